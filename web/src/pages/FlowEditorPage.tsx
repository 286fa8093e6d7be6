// The flow editor: palette, canvas, side panel. Drafts save themselves; validate, publish,
// versions and the test call are in the toolbar. `?version=N` opens a published version
// read-only; `?cdr=ID` opens the version a call used with its path drawn (Show path).
import '@xyflow/react/dist/style.css';
import { Background, Controls, MiniMap, ReactFlow, ReactFlowProvider, useReactFlow, type Edge } from '@xyflow/react';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useParams, useSearchParams } from 'react-router';
import { ApiError, errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { entityTypeForNode } from '../api/entities';
import { keys, useNodeTypes } from '../api/queries';
import type { DiffSide, Flow, FlowDiff, Id, NodeType, Problem } from '../api/types';
import { ErrorBanner, Spinner } from '../components/common/ui';
import { FlowNode, useNodeNamer, useOutputLabel } from '../components/flow/FlowNode';
import { Inspector } from '../components/flow/Inspector';
import { LabelledEdge } from '../components/flow/LabelledEdge';
import { DND_TYPE, Palette } from '../components/flow/Palette';
import { DiffDialog, ProblemsPanel, TestCallPanel, VersionsPanel } from '../components/flow/panels';
import { diffMarks, markEntities } from '../components/flow/diff';
import { DraftStatusBar } from '../components/flow/DraftStatus';
import { toSteps } from '../components/flow/pathAnimation';
import { defaultsFromSchema } from '../components/flow/schema';
import { useEditor } from '../store/editor';

const nodeTypes = { pbx: FlowNode };
const edgeTypes = { labelled: LabelledEdge };
type Tab = 'inspect' | 'problems' | 'versions' | 'test';

export default function FlowEditorPage() {
  return (
    <ReactFlowProvider>
      <Editor />
    </ReactFlowProvider>
  );
}

function isTyping(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

function Editor() {
  const { id } = useParams();
  const flowId = Number(id) as Id;
  const [params, setParams] = useSearchParams();
  const qc = useQueryClient();
  const rf = useReactFlow();
  const wrapper = useRef<HTMLDivElement>(null);
  const flow = useQuery({ queryKey: keys.flow(flowId), queryFn: () => api.flows.get(flowId), enabled: Number.isFinite(flowId) });
  const types = useNodeTypes();
  const s = useEditor();
  const [tab, setTab] = useState<Tab>('inspect');
  const [busy, setBusy] = useState<string | null>(null);
  const [mobilePalette, setMobilePalette] = useState(false);
  const [notice, setNotice] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const [liveDiff, setLiveDiff] = useState(false);

  const versionParam = params.get('version');
  const cdrParam = params.get('cdr');

  // load the draft, a published version, or a call's version with its path
  useEffect(() => {
    if (!flow.data) return;
    let cancelled = false;
    (async () => {
      const st = useEditor.getState();
      // the draft is (re)loaded when another flow was open, or when leaving a read-only view
      if (st.flowId !== flow.data.id || (st.readOnly && !cdrParam && !versionParam)) st.load(flow.data);
      try {
        if (cdrParam) {
          const cdr = await api.cdrs.get(Number(cdrParam));
          const v = cdr.flow_version ? await api.flows.version(flowId, cdr.flow_version) : null;
          if (cancelled) return;
          useEditor.getState().view(v?.flow_data ?? flow.data.flow_data, v ? `version ${v.version} (call ${cdr.call_id})` : `call ${cdr.call_id}`);
          useEditor.getState().showPath(`Call from ${cdr.caller_id_num ?? 'unknown'}`, toSteps(cdr.flow_path ?? []));
          useEditor.getState().stepPath('last');
          setTab('inspect');
        } else if (versionParam) {
          const v = await api.flows.version(flowId, Number(versionParam));
          if (cancelled) return;
          useEditor.getState().view(v.flow_data ?? { nodes: [], edges: [] }, `version ${v.version}`);
        }
      } catch (e) {
        if (!cancelled) setNotice({ tone: 'bad', text: errorMessage(e) });
      }
      // where the flow was left, else frame what is there, never zoomed in past 100 %
      const vp = useEditor.getState().extra.viewport as { x?: unknown; y?: unknown; zoom?: unknown } | undefined;
      setTimeout(() => {
        if (!cdrParam && vp && typeof vp.x === 'number' && typeof vp.y === 'number' && typeof vp.zoom === 'number') void rf.setViewport({ x: vp.x, y: vp.y, zoom: vp.zoom });
        else if (useEditor.getState().nodes.length > 0) void rf.fitView({ padding: 0.2, duration: 0, maxZoom: 1 });
      }, 50);
    })();
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [flow.data?.id, versionParam, cdrParam]);

  // autosave the draft 800 ms after the last change
  const save = useCallback(async () => {
    const st = useEditor.getState();
    if (st.readOnly || st.flowId !== flowId || st.saveState === 'saved') return;
    const rev = st.revision;
    st.setSaveState('saving');
    // the canvas position is saved with the graph, so the flow reopens where it was left
    const graph = { ...st.graph(), viewport: rf.getViewport() };
    try {
      const saved = await api.flows.update(flowId, { name: st.name, flow_data: graph });
      qc.setQueryData(keys.flow(flowId), saved);
      if (useEditor.getState().revision === rev) useEditor.getState().setSaveState('saved');
      else useEditor.getState().setSaveState('dirty');
    } catch (e) {
      useEditor.getState().setSaveState('error', errorMessage(e));
      // errors on nodes and edges ("flow_data.nodes[3].data.entity_id") outline them
      if (e instanceof ApiError) {
        const problems: Problem[] = [];
        for (const d of e.details) {
          const m = /^flow_data\.(nodes|edges)\[(\d+)\]/.exec(d.field);
          if (!m) continue;
          const item = m[1] === 'nodes' ? graph.nodes[Number(m[2])] : graph.edges[Number(m[2])];
          if (item) problems.push({ severity: 'error', code: 'save', message: `${d.field.slice(m[0].length).replace(/^\./, '') || m[1]}: ${d.message}`, ...(m[1] === 'nodes' ? { node_id: item.id } : { edge_id: item.id }) });
        }
        if (problems.length) useEditor.getState().setProblems(problems);
      }
      throw e;
    }
  }, [flowId, qc, rf]);

  useEffect(() => {
    if (s.saveState !== 'dirty' || s.readOnly) return;
    const t = setTimeout(() => void save().catch(() => undefined), 800);
    return () => clearTimeout(t);
  }, [s.revision, s.saveState, s.readOnly, save]);

  // continuous validation: once the draft is saved and nothing changed for a moment, the
  // validator's problems replace the shown ones (fixed problems go, new ones appear);
  // Validate and Publish only add opening the Problems tab
  const validatedRevision = useRef<number | null>(null);
  useEffect(() => {
    if (s.readOnly || s.saveState !== 'saved' || s.flowId !== flowId || validatedRevision.current === s.revision) return;
    const rev = s.revision;
    const t = setTimeout(() => {
      api.flows
        .validate(flowId)
        .then((r) => {
          const st = useEditor.getState();
          if (st.revision !== rev || st.readOnly || st.flowId !== flowId) return;
          validatedRevision.current = rev;
          st.setProblems(r.problems);
        })
        .catch(() => undefined);
    }, 500);
    return () => clearTimeout(t);
  }, [s.revision, s.saveState, s.readOnly, s.flowId, flowId]);

  // leaving the editor (another page, another flow) saves what the timer had not yet
  useEffect(() => () => void save().catch(() => undefined), [save]);

  useEffect(() => {
    const warn = (e: BeforeUnloadEvent) => {
      const st = useEditor.getState().saveState;
      if (st === 'dirty' || st === 'saving') e.preventDefault();
    };
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, []);

  // keyboard: undo/redo, copy/cut/paste (Delete and arrows are React Flow's)
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e.target) || document.querySelector('[role="dialog"]')) return;
      const mod = e.ctrlKey || e.metaKey;
      if (!mod) return;
      const k = e.key.toLowerCase();
      const st = useEditor.getState();
      if (k === 'z' && !e.shiftKey) st.undo();
      else if ((k === 'z' && e.shiftKey) || k === 'y') st.redo();
      else if (k === 'c') st.copy();
      else if (k === 'x') st.cut();
      else if (k === 'v') st.paste();
      else return;
      e.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);

  const addNodeOfType = useCallback(
    (t: NodeType, position?: { x: number; y: number }) => {
      const el = wrapper.current?.getBoundingClientRect();
      const pos = position ?? rf.screenToFlowPosition({ x: (el?.left ?? 0) + (el?.width ?? 600) / 2, y: (el?.top ?? 0) + (el?.height ?? 400) / 2 });
      const config = (defaultsFromSchema(t.config_schema) as Record<string, unknown>) ?? {};
      useEditor.getState().addNode(t.id, pos, { config, entity_type: entityTypeForNode(t) ?? null });
      setTab('inspect');
    },
    [rf],
  );

  const onDrop = useCallback(
    (e: React.DragEvent) => {
      e.preventDefault();
      const typeId = e.dataTransfer.getData(DND_TYPE);
      const t = types.data?.find((x) => x.id === typeId);
      if (!t) return;
      addNodeOfType(t, rf.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    },
    [types.data, rf, addNodeOfType],
  );

  const validate = async (): Promise<Problem[] | null> => {
    setBusy('validate');
    setNotice(null);
    try {
      await save();
      const r = await api.flows.validate(flowId);
      s.setProblems(r.problems);
      setTab('problems');
      return r.problems;
    } catch (e) {
      setNotice({ tone: 'bad', text: errorMessage(e) });
      return null;
    } finally {
      setBusy(null);
    }
  };

  const publish = async () => {
    setBusy('publish');
    setNotice(null);
    try {
      await save();
      const v = await api.flows.publish(flowId);
      // what remains are warnings (they do not block publishing): keep them listed
      s.setProblems(v.warnings ?? []);
      setNotice({ tone: 'ok', text: `Published version ${v.version}.` });
      void qc.invalidateQueries({ queryKey: keys.versions(flowId) });
      void qc.invalidateQueries({ queryKey: keys.flows });
    } catch (e) {
      if (e instanceof ApiError && Array.isArray(e.body.problems)) {
        s.setProblems(e.body.problems as Problem[]);
        setTab('problems');
      }
      setNotice({ tone: 'bad', text: errorMessage(e) });
    } finally {
      setBusy(null);
    }
  };

  const focusProblem = (p: Problem) => {
    const st = useEditor.getState();
    const nodeId = p.node_id ?? (p.edge_id ? st.edges.find((e) => e.id === p.edge_id)?.source : undefined);
    if (!nodeId) return;
    st.selectOnly(p.node_id ?? null, p.edge_id ?? null);
    void rf.fitView({ nodes: [{ id: nodeId }], duration: 300, maxZoom: 1.2, padding: 0.5 });
    if (p.node_id) setTab('inspect');
  };

  // back to the draft from a read-only view (one opened by URL, or by a diff or a test call)
  const backToDraft = () => {
    if (versionParam || cdrParam) setParams({});
    else if (flow.data && useEditor.getState().readOnly) useEditor.getState().load(flow.data);
  };

  /** A published version's graph on the canvas, read-only, without changing the URL. */
  const viewVersion = async (v: number, title: string) => {
    await save().catch(() => undefined);
    const fv = await api.flows.version(flowId, v);
    useEditor.getState().view(fv.flow_data ?? { nodes: [], edges: [] }, title);
  };

  // a diff drawn on its newer side: the draft, or a published version viewed read-only
  const showDiff = async (d: FlowDiff, b: DiffSide) => {
    try {
      const live = flow.data?.draft.live_version ?? null;
      const v = b === 'live' ? live : b;
      if (v === 'draft' || v === null) backToDraft();
      else await viewVersion(v, `version ${v}`);
      const st = useEditor.getState();
      const title = `${typeof d.from === 'number' ? `v${d.from}` : d.from} → ${typeof d.to === 'number' ? `v${d.to}` : d.to}`;
      const m = markEntities(diffMarks(d, title), st.nodes, d.entities ?? []);
      st.setDiffMarks(m);
      // frame what changed
      const marked = Object.keys(m.nodes).map((id) => ({ id }));
      if (marked.length) setTimeout(() => void rf.fitView({ nodes: marked, padding: 0.3, duration: 0, maxZoom: 1 }), 50);
    } catch (e) {
      setNotice({ tone: 'bad', text: errorMessage(e) });
    }
  };

  const onReset = (f: Flow) => {
    qc.setQueryData(keys.flow(flowId), f);
    useEditor.getState().load(f);
    void qc.invalidateQueries({ queryKey: keys.flows });
    void qc.invalidateQueries({ queryKey: ['flows-using'] });
    setNotice({ tone: 'ok', text: `The draft is version ${f.draft.live_version ?? ''} again.` });
  };

  // canvas decorations: problems in red, the path in green, edges named after their output
  const errNodes = useMemo(() => new Set(s.problems.filter((p) => p.node_id && p.severity === 'error').map((p) => p.node_id!)), [s.problems]);
  const errEdges = useMemo(() => new Set(s.problems.filter((p) => p.edge_id).map((p) => p.edge_id!)), [s.problems]);
  const frame = s.path ? s.path.frames[s.path.stepper.index] : undefined;
  const marks = s.diffMarks;
  const displayNodes = useMemo(() => {
    const shown = s.nodes.map((n) => {
      const mark = marks?.nodes[n.id];
      const cls = [errNodes.has(n.id) ? 'has-error' : '', frame?.visitedNodes.includes(n.id) ? 'on-path' : '', frame?.nodeId === n.id ? 'path-current' : '', mark ? `diff-${mark}` : ''].filter(Boolean).join(' ');
      return cls ? { ...n, className: cls } : n;
    });
    // removed nodes stay where they were, faded, while a diff is shown
    const here = new Set(s.nodes.map((n) => n.id));
    return marks ? [...shown, ...marks.ghostNodes.filter((g) => !here.has(g.id))] : shown;
  }, [s.nodes, errNodes, frame, marks]);
  // an edge object is rebuilt only when what it shows changed, so React Flow re-renders only it
  const edgeCache = useRef(new Map<string, { src: unknown; label: unknown; cls?: string; animated: boolean; out: Edge }>());
  const displayEdges: Edge[] = useMemo(() => {
    const cache = edgeCache.current;
    const next = s.edges.map((e) => {
      const o = s.outputs[e.source]?.find((x) => x.id === e.sourceHandle);
      const label = o ? (o.label ?? o.id) : (e.label ?? e.sourceHandle ?? undefined);
      const mark = marks?.edges[e.id];
      const cls = [errEdges.has(e.id) ? 'has-error' : '', frame?.visitedEdges.includes(e.id) ? 'on-path' : '', mark ? `diff-${mark}` : ''].filter(Boolean).join(' ') || undefined;
      const animated = frame?.edgeId === e.id;
      const hit = cache.get(e.id);
      if (hit && hit.src === e && hit.label === label && hit.cls === cls && hit.animated === animated) return hit.out;
      const out: Edge = { ...e, type: 'labelled', label, className: cls, animated };
      cache.set(e.id, { src: e, label, cls, animated, out });
      return out;
    });
    if (cache.size > next.length * 2) for (const k of cache.keys()) if (!s.edges.some((e) => e.id === k)) cache.delete(k);
    if (!marks) return next;
    const ends = new Set(displayNodes.map((n) => n.id));
    const here = new Set(s.edges.map((e) => e.id));
    const ghosts: Edge[] = marks.ghostEdges.filter((g) => !here.has(g.id) && ends.has(g.source) && ends.has(g.target)).map((g) => ({ ...g, type: 'labelled', label: g.label ?? g.sourceHandle ?? undefined }));
    return [...next, ...ghosts];
  }, [s.edges, s.outputs, errEdges, frame, marks, displayNodes]);

  const selected = s.nodes.filter((n) => n.selected);
  const readOnly = !!s.readOnly;

  if (flow.isLoading) return <Spinner label="Loading flow…" />;
  if (flow.error) return <ErrorBanner error={errorMessage(flow.error)} />;

  const saveText = { saved: 'All changes saved', dirty: 'Unsaved changes', saving: 'Saving…', error: `Not saved: ${s.saveError ?? ''}` }[s.saveState];
  const tabs: { key: Tab; label: string; badge?: number }[] = [
    { key: 'inspect', label: 'Node' },
    { key: 'problems', label: 'Problems', badge: s.problems.length || undefined },
    { key: 'versions', label: 'Versions' },
    { key: 'test', label: 'Test call' },
  ];

  return (
    <div className="flex h-full flex-col">
      <header className="flex flex-wrap items-center gap-2 border-b border-slate-200 bg-white px-3 py-2">
        <Link to="/flows" className="btn btn-ghost btn-sm" aria-label="Back to flows">
          ←
        </Link>
        <label htmlFor="flow-name" className="sr-only">
          Flow name
        </label>
        <input id="flow-name" className="input max-w-64 font-semibold" value={s.name} disabled={readOnly} onChange={(e) => s.setName(e.target.value)} />
        <span className={`text-xs ${s.saveState === 'error' ? 'text-red-600' : 'text-slate-500'}`} role="status" aria-live="polite" data-testid="save-state">
          {readOnly ? `Viewing ${s.readOnly} (read-only)` : saveText}
        </span>
        {!readOnly && flow.data?.draft && <DraftStatusBar flowId={flowId} status={flow.data.draft} onShowDiff={() => setLiveDiff(true)} onReset={onReset} />}
        <div className="ml-auto flex flex-wrap items-center gap-1">
          <button type="button" className="btn btn-sm" onClick={s.undo} disabled={readOnly || s.history.past.length === 0} aria-label="Undo" title="Undo (Ctrl+Z)">
            ↶
          </button>
          <button type="button" className="btn btn-sm" onClick={s.redo} disabled={readOnly || s.history.future.length === 0} aria-label="Redo" title="Redo (Ctrl+Shift+Z)">
            ↷
          </button>
          <button type="button" className="btn btn-sm" onClick={() => s.copy()} disabled={selected.length === 0} title="Copy (Ctrl+C)">
            Copy
          </button>
          <button type="button" className="btn btn-sm" onClick={() => s.paste()} disabled={readOnly} title="Paste (Ctrl+V)">
            Paste
          </button>
          <button type="button" className="btn btn-sm" onClick={() => void rf.fitView({ padding: 0.2, duration: 200, maxZoom: 1 })} title="Show the whole flow">
            Fit to screen
          </button>
          {readOnly ? (
            <button type="button" className="btn btn-sm" onClick={backToDraft}>
              Back to draft
            </button>
          ) : (
            <>
              <button type="button" className="btn btn-sm" onClick={() => void validate()} disabled={!!busy}>
                {busy === 'validate' ? 'Validating…' : 'Validate'}
              </button>
              <button type="button" className="btn btn-primary btn-sm" onClick={() => void publish()} disabled={!!busy}>
                {busy === 'publish' ? 'Publishing…' : 'Publish'}
              </button>
            </>
          )}
        </div>
      </header>
      {notice && (
        <div role={notice.tone === 'bad' ? 'alert' : 'status'} className={`px-3 py-1.5 text-sm ${notice.tone === 'ok' ? 'bg-emerald-50 text-emerald-800' : 'bg-red-50 text-red-800'}`}>
          {notice.text}
          <button type="button" className="ml-2 underline" onClick={() => setNotice(null)}>
            dismiss
          </button>
        </div>
      )}
      {marks && (
        <div role="status" className="flex items-center gap-2 bg-slate-50 px-3 py-1 text-xs text-slate-700" data-testid="diff-legend">
          Changes {marks.title} on the canvas: <span className="diff-chip diff-chip-added">added</span> <span className="diff-chip diff-chip-changed">changed</span>{' '}
          <span className="diff-chip diff-chip-removed">removed</span>
          <button type="button" className="btn btn-sm ml-auto" onClick={() => s.setDiffMarks(null)}>
            Hide changes
          </button>
        </div>
      )}
      {liveDiff && <DiffDialog flowId={flowId} a="live" b="draft" onClose={() => setLiveDiff(false)} onShow={(d, b) => void showDiff(d, b)} />}
      <div className="flex min-h-0 flex-1">
        <aside className="hidden w-44 shrink-0 border-r border-slate-200 bg-slate-50 md:block xl:w-52">
          <Palette onAdd={(t) => addNodeOfType(t)} disabled={readOnly} />
        </aside>
        <div ref={wrapper} className="relative min-w-0 flex-1" onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; }} onDrop={onDrop} data-testid="canvas">
          <ReactFlow
            nodes={displayNodes}
            edges={displayEdges}
            nodeTypes={nodeTypes}
            edgeTypes={edgeTypes}
            onNodesChange={s.onNodesChange}
            onEdgesChange={s.onEdgesChange}
            onConnect={s.connect}
            onNodeClick={() => setTab('inspect')}
            nodesDraggable={!readOnly}
            nodesConnectable={!readOnly}
            deleteKeyCode={readOnly ? null : ['Delete', 'Backspace']}
            minZoom={0.1}
            maxZoom={2}
            defaultViewport={{ x: 0, y: 0, zoom: 1 }}
            proOptions={{ hideAttribution: true }}
            aria-label="Flow canvas"
          >
            <Background gap={16} />
            <Controls />
            <MiniMap pannable zoomable className="!hidden lg:!block" />
          </ReactFlow>
          <div className="absolute bottom-2 left-1/2 z-10 -translate-x-1/2 md:hidden">
            <details className="rounded-md bg-white shadow" open={mobilePalette} onToggle={(e) => setMobilePalette((e.target as HTMLDetailsElement).open)}>
              <summary className="cursor-pointer px-3 py-1.5 text-sm">Add node</summary>
              {mobilePalette && (
                <div className="max-h-72 w-64 overflow-y-auto">
                  <Palette id="palette-mobile" onAdd={(t) => addNodeOfType(t)} disabled={readOnly} />
                </div>
              )}
            </details>
          </div>
        </div>
        <aside className="flex w-72 shrink-0 flex-col border-l border-slate-200 bg-white lg:w-80 2xl:w-96" aria-label="Side panel">
          <div role="tablist" aria-label="Panels" className="flex border-b border-slate-200">
            {tabs.map((t) => (
              <button
                key={t.key}
                role="tab"
                type="button"
                id={`tab-${t.key}`}
                aria-selected={tab === t.key}
                aria-controls={`panel-${t.key}`}
                className={`flex-1 px-2 py-2 text-xs font-medium ${tab === t.key ? 'border-b-2 border-indigo-600 text-indigo-700' : 'text-slate-600 hover:bg-slate-50'}`}
                onClick={() => setTab(t.key)}
              >
                {t.label}
                {t.badge ? <span className="ml-1 rounded-full bg-red-100 px-1.5 text-red-700">{t.badge}</span> : null}
              </button>
            ))}
          </div>
          <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="min-h-0 flex-1 overflow-y-auto">
            {tab === 'inspect' &&
              (selected.length === 1 ? (
                <Inspector key={selected[0].id} nodeId={selected[0].id} />
              ) : (
                <p className="p-3 text-sm text-slate-500">
                  {selected.length > 1 ? `${selected.length} nodes selected (Ctrl+C to copy, Delete to remove).` : 'Drag a node from the palette, or select one to edit it.'}
                  {s.path && <PathSummary />}
                </p>
              ))}
            {tab === 'problems' && <ProblemsPanel onFocus={focusProblem} />}
            {tab === 'versions' && (
              <VersionsPanel
                flowId={flowId}
                onView={(v) => void save().catch(() => undefined).finally(() => (v === null ? backToDraft() : setParams({ version: String(v) })))}
                onShowDiff={(d, b) => void showDiff(d, b)}
              />
            )}
            {tab === 'test' && (
              <TestCallPanel
                flowId={flowId}
                onBeforeRun={save}
                onBeforeShow={async (v) => {
                  // a run of the live version is drawn over the live graph, not the draft's
                  if (v > 0) await viewVersion(v, `live version ${v} (test call)`);
                  else backToDraft();
                }}
              />
            )}
          </div>
        </aside>
      </div>
    </div>
  );
}

function PathSummary() {
  const path = useEditor((s) => s.path);
  const nameOf = useNodeNamer();
  const outputLabel = useOutputLabel();
  const stepPath = useEditor((s) => s.stepPath);
  if (!path) return null;
  return (
    <span className="mt-3 block">
      <strong className="block text-slate-700">{path.title}</strong>
      <span className="mt-1 flex gap-1">
        <button type="button" className="btn btn-sm" onClick={() => stepPath('prev')} aria-label="Previous step">◀</button>
        <button type="button" className="btn btn-sm" onClick={() => stepPath('next')} aria-label="Next step">▶</button>
      </span>
      <ol className="mt-2 list-decimal pl-5">
        {path.frames.map((f) => {
          return (
            <li key={f.index} className={f.index === path.stepper.index ? 'font-semibold text-emerald-700' : ''}>
              {nameOf(f.nodeId)}
              {f.step.output ? ` → ${outputLabel(f.nodeId, f.step.output)}` : ''}
              {f.step.error ? ` (${f.step.error})` : ''}
            </li>
          );
        })}
      </ol>
    </span>
  );
}
