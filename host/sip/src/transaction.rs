//! wip
pub struct TransactionLayer;
