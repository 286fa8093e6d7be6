//! stub
use crate::error::Result;
pub struct EngineConfig; pub struct EngineHealth; pub struct MediaEngine; pub struct SessionHandle;
pub use crate::recorder::RecordingInfo;
pub fn _x() -> Result<()> { Ok(()) }
