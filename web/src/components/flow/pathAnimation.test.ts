import { describe, expect, it } from 'vitest';
import { pathFrames, step, toSteps } from './pathAnimation';

const edges = [
  { id: 'e1', source: 'num', target: 'ts', sourceHandle: 'next' },
  { id: 'e2', source: 'ts', target: 'ivr', sourceHandle: 'Business hours' },
  { id: 'e3', source: 'ts', target: 'vm', sourceHandle: 'default' },
  { id: 'e4', source: 'ivr', target: 'rg', sourceHandle: '1' },
  { id: 'e5', source: 'ivr', target: 'ivr', sourceHandle: 'invalid' },
  { id: 'e6', source: 'rg', target: 'vm', sourceHandle: 'no_answer' },
];

describe('path frames', () => {
  it('follows the edges of the outputs taken', () => {
    const frames = pathFrames(
      toSteps([
        { node_id: 'num', output: 'next' },
        { node_id: 'ts', output: 'Business hours' },
        { node_id: 'ivr', output: 'invalid' },
        { node_id: 'ivr', output: '1' },
        { node_id: 'rg', output: 'no_answer' },
        { node_id: 'vm', output: null },
      ]),
      edges,
    );
    expect(frames.map((f) => f.nodeId)).toEqual(['num', 'ts', 'ivr', 'ivr', 'rg', 'vm']);
    expect(frames.map((f) => f.edgeId)).toEqual([null, 'e1', 'e2', 'e5', 'e4', 'e6']);
    expect(frames[2].visitedNodes).toEqual(['num', 'ts', 'ivr']);
    expect(frames[2].visitedEdges).toEqual(['e1', 'e2']);
    // a loop visits the node once in the visited list
    expect(frames[3].visitedNodes).toEqual(['num', 'ts', 'ivr']);
    expect(frames[5].visitedEdges).toEqual(['e1', 'e2', 'e5', 'e4', 'e6']);
    expect(frames[5].visitedNodes).not.toContain('x');
  });

  it('takes the edge between two nodes when the output is unknown (a CDR with node ids only)', () => {
    const frames = pathFrames(toSteps(['num', 'ts', 'vm']), edges);
    expect(frames.map((f) => f.edgeId)).toEqual([null, 'e1', 'e3']);
    expect(frames[0].step).toEqual({ node_id: 'num' });
  });

  it('leaves the edge empty where the graph has none (the version changed)', () => {
    const frames = pathFrames(toSteps(['num', 'gone']), edges);
    expect(frames[1].edgeId).toBeNull();
    expect(frames[1].visitedNodes).toEqual(['num', 'gone']);
  });

  it('no path, no frames', () => {
    expect(pathFrames(toSteps(null), edges)).toEqual([]);
  });
});

describe('stepping', () => {
  it('plays to the end and stops', () => {
    let s = step({ index: 0, playing: false }, 'play', 3);
    expect(s).toEqual({ index: 0, playing: true });
    s = step(s, 'tick', 3);
    expect(s).toEqual({ index: 1, playing: true });
    s = step(s, 'tick', 3);
    expect(s).toEqual({ index: 2, playing: false });
    s = step(s, 'tick', 3);
    expect(s).toEqual({ index: 2, playing: false });
    // play at the end starts over
    expect(step(s, 'play', 3)).toEqual({ index: 0, playing: true });
  });

  it('next, prev, first and last stay in bounds and stop playing', () => {
    const playing = { index: 1, playing: true };
    expect(step(playing, 'next', 3)).toEqual({ index: 2, playing: false });
    expect(step({ index: 2, playing: false }, 'next', 3).index).toBe(2);
    expect(step({ index: 0, playing: false }, 'prev', 3).index).toBe(0);
    expect(step(playing, 'prev', 3)).toEqual({ index: 0, playing: false });
    expect(step(playing, 'last', 3)).toEqual({ index: 2, playing: false });
    expect(step(playing, 'first', 3)).toEqual({ index: 0, playing: false });
    expect(step(playing, 'pause', 3)).toEqual({ index: 1, playing: false });
  });

  it('a one-step path does not play', () => {
    expect(step({ index: 0, playing: false }, 'play', 1)).toEqual({ index: 0, playing: false });
    expect(step({ index: 0, playing: true }, 'tick', 0)).toEqual({ index: 0, playing: false });
  });
});
