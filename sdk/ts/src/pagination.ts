/**
 * Cursor pagination over pushdial's lists (`limit`, `starting_after`, `ending_before`,
 * answers `{ data, has_more }`, newest first): a `PagePromise` is awaited for one page, or
 * iterated with `for await` for every item of every page, each page asked for when the
 * previous one is used up.
 */

/** One page of a list. */
export interface ListPage<T> {
  data: T[];
  has_more: boolean;
}

/** Where a page starts: after an id (older items, the default direction) or before one (newer). */
export interface Cursor {
  starting_after?: string | undefined;
  ending_before?: string | undefined;
}

/**
 * A list request: `await` it for its first page (`{ data, has_more }`), or `for await` it
 * for every item across pages:
 *
 * ```ts
 * const page = await pd.calls.list({ limit: 10 });            // one page
 * for await (const call of pd.calls.list({ status: 'completed' })) { … }  // all of them
 * ```
 *
 * Iterating follows the direction the request reads in: with `ending_before`, towards
 * newer items (each page's first id becomes the next `ending_before`); otherwise towards
 * older ones (each page's last id becomes the next `starting_after`).
 */
export class PagePromise<T extends { id: string }> implements PromiseLike<ListPage<T>>, AsyncIterable<T> {
  readonly #fetchPage: (cursor: Cursor) => Promise<ListPage<T>>;
  readonly #start: Cursor;
  #first: Promise<ListPage<T>> | undefined;

  constructor(fetchPage: (cursor: Cursor) => Promise<ListPage<T>>, start: Cursor = {}) {
    this.#fetchPage = fetchPage;
    this.#start = start;
  }

  /** The first page; asked for once, however often it is awaited. */
  firstPage(): Promise<ListPage<T>> {
    this.#first ??= this.#fetchPage(this.#start);
    return this.#first;
  }

  then<A = ListPage<T>, B = never>(
    onfulfilled?: ((page: ListPage<T>) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.firstPage().then(onfulfilled, onrejected);
  }

  catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<ListPage<T> | B> {
    return this.firstPage().catch(onrejected);
  }

  /** Every page, in turn. */
  async *pages(): AsyncGenerator<ListPage<T>, void, undefined> {
    const backwards = Boolean(this.#start.ending_before) && !this.#start.starting_after;
    let page = await this.firstPage();
    for (;;) {
      yield page;
      const edge = backwards ? page.data[0] : page.data[page.data.length - 1];
      if (!page.has_more || !edge) return;
      page = await this.#fetchPage(backwards ? { ending_before: edge.id } : { starting_after: edge.id });
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) {
      yield* page.data;
    }
  }

  /** Every item, across pages, up to `max` of them (default: all). */
  async toArray(max = Infinity): Promise<T[]> {
    const out: T[] = [];
    if (max <= 0) return out;
    for await (const item of this) {
      out.push(item);
      if (out.length >= max) break;
    }
    return out;
  }
}
