// Routes. The editor and the heavier pages are split into their own chunks (React.lazy), so
// the first load is the shell, the login and the dashboard.
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, Suspense, useEffect } from 'react';
import { createBrowserRouter, Navigate, Outlet, RouterProvider, useLocation, useNavigate } from 'react-router';
import { ApiError, setCsrfToken, setUnauthorizedHandler } from './api/client';
import { api } from './api/endpoints';
import { live } from './api/live';
import { keys, useSession } from './api/queries';
import { Spinner } from './components/common/ui';
import { AppLayout } from './components/layout/AppLayout';
import { useQuery } from '@tanstack/react-query';
import LoginPage from './pages/LoginPage';

const SetupPage = lazy(() => import('./pages/SetupPage'));
const DashboardPage = lazy(() => import('./pages/DashboardPage'));
const FlowsPage = lazy(() => import('./pages/FlowsPage'));
const FlowEditorPage = lazy(() => import('./pages/FlowEditorPage'));
const EntityPages = lazy(() => import('./pages/EntityPages'));
const PromptsPage = lazy(() => import('./pages/PromptsPage'));
const PluginsPage = lazy(() => import('./pages/PluginsPage'));
const CallHistoryPage = lazy(() => import('./pages/CallHistoryPage'));
const RecordingsPage = lazy(() => import('./pages/RecordingsPage'));
const WebhooksPage = lazy(() => import('./pages/WebhooksPage'));
const OutboundRoutesPage = lazy(() => import('./pages/OutboundRoutesPage'));
const SettingsPage = lazy(() => import('./pages/SettingsPage'));
const PhonePage = lazy(() => import('./pages/PhonePage'));

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (n, e) => !(e instanceof ApiError && e.status > 0 && e.status < 500) && n < 2,
      refetchOnWindowFocus: false,
    },
  },
});

/** Sends the browser to /setup on first boot, to /login without a session. */
function RequireSession() {
  const setup = useQuery({ queryKey: keys.setup, queryFn: api.setup.status, retry: false, staleTime: Infinity });
  const session = useSession();
  const loc = useLocation();
  const navigate = useNavigate();

  useEffect(() => {
    setUnauthorizedHandler(() => {
      queryClient.removeQueries({ queryKey: keys.session });
      navigate('/login', { replace: true, state: { from: location.pathname + location.search } });
    });
    return () => setUnauthorizedHandler(null);
  }, [navigate]);

  useEffect(() => {
    if (session.data) {
      setCsrfToken(session.data.csrf_token ?? null);
      live.start();
    }
  }, [session.data]);

  if (setup.data?.required) return <Navigate to="/setup" replace />;
  if (session.isLoading || setup.isLoading) return <Spinner />;
  if (!session.data) return <Navigate to="/login" replace state={{ from: loc.pathname + loc.search }} />;
  return (
    <AppLayout user={session.data.user?.username ?? session.data.token ?? ''}>
      <Suspense fallback={<Spinner />}>
        <Outlet />
      </Suspense>
    </AppLayout>
  );
}

const entity = (type: string) => (
  <Suspense fallback={<Spinner />}>
    <EntityPages type={type} />
  </Suspense>
);

const router = createBrowserRouter([
  {
    path: '/setup',
    element: (
      <Suspense fallback={<Spinner />}>
        <SetupPage />
      </Suspense>
    ),
  },
  { path: '/login', element: <LoginPage /> },
  {
    element: <RequireSession />,
    children: [
      { index: true, element: <DashboardPage /> },
      { path: 'flows', element: <FlowsPage /> },
      { path: 'flows/:id', element: <FlowEditorPage /> },
      { path: 'extensions', element: entity('extension') },
      { path: 'trunks', element: entity('trunk') },
      { path: 'outbound-routes', element: <OutboundRoutesPage /> },
      { path: 'numbers', element: entity('inbound_number') },
      { path: 'voicemail', element: entity('voicemail_box') },
      { path: 'ring-groups', element: entity('ring_group') },
      { path: 'ivr-menus', element: entity('ivr_menu') },
      { path: 'time-switches', element: entity('time_switch') },
      { path: 'conferences', element: entity('conference_bridge') },
      { path: 'prompts', element: <PromptsPage /> },
      { path: 'plugins', element: <PluginsPage /> },
      { path: 'calls', element: <CallHistoryPage /> },
      { path: 'recordings', element: <RecordingsPage /> },
      { path: 'webhooks', element: <WebhooksPage /> },
      { path: 'settings', element: <SettingsPage /> },
      { path: 'phone', element: <PhonePage /> },
      { path: '*', element: <p className="p-6 text-sm text-slate-600">This page does not exist.</p> },
    ],
  },
]);

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  );
}
