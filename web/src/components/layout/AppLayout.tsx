// The shell: a sidebar (a drawer below 1024 px wide), the signed-in user, logout, and the
// state of the live connection.
import { useState, type ReactNode } from 'react';
import { NavLink, useLocation, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { setCsrfToken } from '../../api/client';
import { api } from '../../api/endpoints';
import { live, useLive } from '../../api/live';
import { Notices } from './Notices';

const NAV: { to: string; label: string; icon: string }[] = [
  { to: '/', label: 'Dashboard', icon: '▦' },
  { to: '/flows', label: 'Call flows', icon: '⇄' },
  { to: '/extensions', label: 'Extensions', icon: '👤' },
  { to: '/trunks', label: 'Trunks', icon: '⛓' },
  { to: '/outbound-routes', label: 'Outbound routes', icon: '↗' },
  { to: '/numbers', label: 'Numbers', icon: '📞' },
  { to: '/voicemail', label: 'Voicemail', icon: '📬' },
  { to: '/ring-groups', label: 'Ring groups', icon: '👥' },
  { to: '/ivr-menus', label: 'IVR menus', icon: '🔢' },
  { to: '/time-switches', label: 'Time switches', icon: '🕐' },
  { to: '/conferences', label: 'Conferences', icon: '🎙' },
  { to: '/prompts', label: 'Prompts', icon: '🔊' },
  { to: '/plugins', label: 'Plugins', icon: '🧩' },
  { to: '/calls', label: 'Call history', icon: '☰' },
  { to: '/phone', label: 'Browser phone', icon: '☎' },
  { to: '/recordings', label: 'Recordings', icon: '⏺' },
  { to: '/webhooks', label: 'Webhooks', icon: '🔔' },
  { to: '/settings', label: 'Settings', icon: '⚙' },
];

export function AppLayout({ user, children }: { user: string; children: ReactNode }) {
  const [open, setOpen] = useState(false);
  const navigate = useNavigate();
  const qc = useQueryClient();
  const loc = useLocation();
  const conn = useLive((s) => s.connection);
  const editor = /^\/flows\/\d+/.test(loc.pathname);

  const logout = async () => {
    try {
      await api.auth.logout();
    } finally {
      live.stop();
      setCsrfToken(null);
      qc.clear();
      navigate('/login', { replace: true });
    }
  };

  // the editor needs the width: the sidebar becomes a rail of icons there
  const rail = editor;
  const nav = (compact: boolean) => (
    <nav aria-label="Main" className="flex h-full flex-col">
      <div className={`flex items-center gap-2 py-4 ${compact ? 'justify-center px-2' : 'px-4'}`}>
        <span className="flex h-7 w-7 items-center justify-center rounded bg-indigo-600 text-sm font-bold text-white" aria-hidden="true">
          F
        </span>
        {!compact && <span className="text-base font-semibold text-white">FlowPBX</span>}
      </div>
      <ul className="flex-1 space-y-0.5 overflow-y-auto px-2">
        {NAV.map((n) => (
          <li key={n.to}>
            <NavLink
              to={n.to}
              end={n.to === '/'}
              onClick={() => setOpen(false)}
              title={compact ? n.label : undefined}
              className={({ isActive }) =>
                `flex items-center gap-2 rounded-md py-1.5 text-sm ${compact ? 'justify-center px-1' : 'px-3'} ${isActive ? 'bg-slate-800 text-white' : 'text-slate-300 hover:bg-slate-800 hover:text-white'}`
              }
            >
              <span className="w-5 text-center" aria-hidden="true">
                {n.icon}
              </span>
              <span className={compact ? 'sr-only' : ''}>{n.label}</span>
            </NavLink>
          </li>
        ))}
      </ul>
      <div className={`border-t border-slate-800 py-3 text-xs text-slate-400 ${compact ? 'px-1 text-center' : 'px-4'}`}>
        <div className={`mb-2 flex items-center gap-1.5 ${compact ? 'justify-center' : ''}`} title={`Live updates: ${conn}`}>
          <span className={`inline-block h-2 w-2 rounded-full ${conn === 'open' ? 'bg-emerald-400' : conn === 'connecting' ? 'bg-amber-400' : 'bg-slate-500'}`} aria-hidden="true" />
          <span className={compact ? 'sr-only' : ''}>live: {conn === 'open' ? 'connected' : conn}</span>
        </div>
        <div className={`flex items-center ${compact ? 'justify-center' : 'justify-between'}`}>
          {!compact && <span className="truncate">{user}</span>}
          <button type="button" className="rounded px-2 py-1 text-slate-200 hover:bg-slate-800" onClick={() => void logout()} title={compact ? `Log out ${user}` : undefined}>
            {compact ? <span aria-label="Log out">↪</span> : 'Log out'}
          </button>
        </div>
      </div>
    </nav>
  );

  return (
    <div className="flex h-screen overflow-hidden">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:px-3 focus:py-2">
        Skip to content
      </a>
      <aside className={`hidden shrink-0 bg-slate-900 lg:block ${rail ? 'w-14' : 'w-56'}`}>{nav(rail)}</aside>
      {open && (
        <div className="fixed inset-0 z-40 flex lg:hidden" onMouseDown={(e) => e.target === e.currentTarget && setOpen(false)}>
          <div className="w-60 bg-slate-900 shadow-xl">{nav(false)}</div>
          <div className="flex-1 bg-slate-900/40" onClick={() => setOpen(false)} />
        </div>
      )}
      <div className="flex min-w-0 flex-1 flex-col">
        <div className="flex items-center gap-2 border-b border-slate-200 bg-white px-3 py-2 lg:hidden">
          <button type="button" className="btn btn-ghost btn-sm" aria-label="Open menu" aria-expanded={open} onClick={() => setOpen(true)}>
            ☰
          </button>
          <span className="font-semibold">FlowPBX</span>
        </div>
        <Notices />
        <main id="main" className={`min-h-0 flex-1 ${editor ? 'overflow-hidden' : 'overflow-y-auto p-4 md:p-6'}`}>
          {children}
        </main>
      </div>
    </div>
  );
}
