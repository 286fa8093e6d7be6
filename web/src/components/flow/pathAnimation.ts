// A call's path through a flow (a simulator run or a CDR's flow_path), as frames the canvas
// shows one after another: the current node, the nodes and edges already walked.
import type { PathEntry, SimStep } from '../../api/types';

export interface PathStep {
  node_id: string;
  output?: string | null;
  error?: string | null;
  duration_ms?: number | null;
  logs?: string[];
}

export interface PathFrame {
  index: number;
  nodeId: string;
  /** the edge taken to arrive here (none for the first node, or when no edge matches) */
  edgeId: string | null;
  visitedNodes: string[];
  visitedEdges: string[];
  step: PathStep;
}

interface EdgeLike {
  id: string;
  source: string;
  target: string;
  sourceHandle?: string | null;
}

/** A CDR's flow_path (node ids, or entries with outputs) or simulator steps, as steps. */
export function toSteps(path: (PathEntry | SimStep | string)[] | null | undefined): PathStep[] {
  if (!path) return [];
  return path.map((p) => (typeof p === 'string' ? { node_id: p } : { ...p }));
}

export function pathFrames(steps: PathStep[], edges: EdgeLike[]): PathFrame[] {
  const frames: PathFrame[] = [];
  const visitedNodes: string[] = [];
  const visitedEdges: string[] = [];
  steps.forEach((step, i) => {
    let via: string | null = null;
    if (i > 0) {
      const prev = steps[i - 1];
      const candidates = edges.filter((e) => e.source === prev.node_id && e.target === step.node_id);
      const exact = candidates.find((e) => prev.output != null && e.sourceHandle === prev.output);
      via = (exact ?? candidates[0])?.id ?? null;
    }
    if (!visitedNodes.includes(step.node_id)) visitedNodes.push(step.node_id);
    if (via && !visitedEdges.includes(via)) visitedEdges.push(via);
    frames.push({ index: i, nodeId: step.node_id, edgeId: via, visitedNodes: [...visitedNodes], visitedEdges: [...visitedEdges], step });
  });
  return frames;
}

export interface Stepper {
  index: number;
  playing: boolean;
}

export type StepAction = 'next' | 'prev' | 'first' | 'last' | 'play' | 'pause' | 'tick';

/** The player: `tick` advances while playing and stops at the end. */
export function step(s: Stepper, a: StepAction, total: number): Stepper {
  const last = Math.max(0, total - 1);
  switch (a) {
    case 'next':
      return { index: Math.min(last, s.index + 1), playing: false };
    case 'prev':
      return { index: Math.max(0, s.index - 1), playing: false };
    case 'first':
      return { index: 0, playing: false };
    case 'last':
      return { index: last, playing: false };
    case 'play':
      return { index: s.index >= last ? 0 : s.index, playing: total > 1 };
    case 'pause':
      return { ...s, playing: false };
    case 'tick': {
      if (!s.playing) return s;
      const index = Math.min(last, s.index + 1);
      return { index, playing: index < last };
    }
  }
}
