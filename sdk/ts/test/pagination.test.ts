// Lists end to end: a page when awaited, every item across pages when iterated, in the
// direction the cursor reads.
import { describe, expect, test } from 'vitest';
import { PagePromise, type Agent } from '../src/index.js';
import { client, recordingFetch } from './support.js';

describe('pagination', () => {
  test('for await walks every page with starting_after until has_more is false', async () => {
    const { attempts, fetch } = recordingFetch();
    const pd = client({ fetch });
    const run = `page-${Date.now()}`;
    const made: Agent[] = [];
    for (let i = 0; i < 5; i++) made.push(await pd.agents.create({ name: `${run}-${i}` }));
    const newestFirst = made.map((a) => a.id).reverse();

    attempts.length = 0;
    const seen: string[] = [];
    for await (const agent of pd.agents.list({ limit: 2 })) seen.push(agent.id);
    // Everything, once each, newest first; ours are the five newest.
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.slice(0, 5)).toEqual(newestFirst);
    const total = seen.length;
    // has_more is exact: a last full page says so, and no empty page is asked for.
    expect(attempts).toHaveLength(Math.ceil(total / 2));
    // Each page after the first starts after the previous page's last item.
    expect(attempts[0]!.url.searchParams.get('starting_after')).toBeNull();
    for (let i = 1; i < attempts.length; i++) {
      expect(attempts[i]!.url.searchParams.get('limit')).toBe('2');
      expect(attempts[i]!.url.searchParams.get('starting_after')).toBe(seen[i * 2 - 1]);
    }
  });

  test('awaiting a list gives its first page; toArray stops at what it needs', async () => {
    const { attempts, fetch } = recordingFetch();
    const pd = client({ fetch });
    const list = pd.agents.list({ limit: 2 });
    expect(list).toBeInstanceOf(PagePromise);
    const page = await list;
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);
    // Awaited again, the same page: asked for once.
    expect(await list).toBe(page);
    expect(attempts).toHaveLength(1);

    attempts.length = 0;
    const three = await pd.agents.list({ limit: 2 }).toArray(3);
    expect(three).toHaveLength(3);
    expect(attempts).toHaveLength(2);
  });

  test('with ending_before the iterator reads towards newer items', async () => {
    const pd = client();
    const run = `newer-${Date.now()}`;
    const made: Agent[] = [];
    for (let i = 0; i < 4; i++) made.push(await pd.agents.create({ name: `${run}-${i}` }));
    // Everything newer than the first of ours: the three others, newest first, in pages of 1.
    const newer: string[] = [];
    for await (const a of pd.agents.list({ limit: 1, ending_before: made[0]!.id })) newer.push(a.id);
    expect(newer.sort()).toEqual(made.slice(1).map((a) => a.id).sort());
  });
});
