import { clone, create } from '@bufbuild/protobuf';
import {
  BookSchema,
  ShelfSchema,
  type Book,
  type Shelf,
} from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';

/**
 * The bookstore's in-memory state: shelves holding books, plus per-shelf
 * change subscriptions for WatchShelf. One instance per server; nothing is
 * module-level, so tests can run several servers side by side.
 *
 * Messages are cloned on the way in and out so a caller mutating what it
 * passed or got back can never change stored state behind the store's back.
 */

/** Why an operation failed; the server maps each kind to a gRPC status. */
export type StoreError =
  | { readonly kind: 'shelf_not_found'; readonly shelf: bigint }
  | { readonly kind: 'book_not_found'; readonly shelf: bigint; readonly book: bigint }
  | { readonly kind: 'already_exists'; readonly resourceType: string; readonly resourceName: string }
  | { readonly kind: 'invalid_argument'; readonly violations: readonly FieldViolation[] };

export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

export type StoreResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: StoreError };

/**
 * One event of a shelf watch. `change` is `<what> <resource name>`, e.g.
 * `book_created shelves/1/books/4`, `book_deleted shelves/1/books/4`,
 * `shelf_deleted shelves/1`; `final` is set on the last event of a watch
 * (the shelf is gone). `books` is the shelf's content after the change.
 */
export interface ShelfChange {
  readonly shelf: Shelf;
  readonly books: readonly Book[];
  readonly change: string;
  readonly final: boolean;
}

export type ShelfListener = (event: ShelfChange) => void;

export interface StoreOptions {
  /** Start with the demo shelves and books (default true). */
  readonly seed?: boolean;
}

export const SHELF_TYPE = ShelfSchema.typeName;
export const BOOK_TYPE = BookSchema.typeName;

export function shelfName(shelf: bigint): string {
  return `shelves/${shelf}`;
}

export function bookName(shelf: bigint, book: bigint): string {
  return `shelves/${shelf}/books/${book}`;
}

interface ShelfEntry {
  readonly shelf: Shelf;
  readonly books: Map<bigint, Book>;
  readonly listeners: Set<ShelfListener>;
}

export class BookstoreStore {
  private readonly shelves = new Map<bigint, ShelfEntry>();
  private lastShelfId = 0n;
  // Book ids are unique across the store (not per shelf) so a book's id alone
  // identifies it in logs and tests.
  private lastBookId = 0n;

  constructor(options: StoreOptions = {}) {
    if (options.seed ?? true) this.seed();
  }

  listShelves(): Shelf[] {
    return [...this.shelves.values()].map((e) => clone(ShelfSchema, e.shelf)).sort(byId);
  }

  getShelf(id: bigint): StoreResult<Shelf> {
    const entry = this.shelves.get(id);
    if (!entry) return shelfNotFound(id);
    return ok(clone(ShelfSchema, entry.shelf));
  }

  /** Creates a shelf; id 0 means "assign the next one". */
  createShelf(input: Shelf | undefined): StoreResult<Shelf> {
    const violations: FieldViolation[] = [];
    if (!input) violations.push({ field: 'shelf', description: 'shelf is required' });
    else {
      if (input.theme.trim() === '') violations.push({ field: 'shelf.theme', description: 'theme must not be empty' });
      if (input.id < 0n) violations.push({ field: 'shelf.id', description: 'id must not be negative' });
    }
    if (!input || violations.length > 0) return invalid(violations);
    const id = input.id === 0n ? this.lastShelfId + 1n : input.id;
    if (this.shelves.has(id)) return alreadyExists(SHELF_TYPE, shelfName(id));
    if (id > this.lastShelfId) this.lastShelfId = id;
    const shelf = create(ShelfSchema, { id, theme: input.theme });
    this.shelves.set(id, { shelf, books: new Map(), listeners: new Set() });
    return ok(clone(ShelfSchema, shelf));
  }

  /** Deletes a shelf with its books; its watchers get a final event. */
  deleteShelf(id: bigint): StoreResult<void> {
    const entry = this.shelves.get(id);
    if (!entry) return shelfNotFound(id);
    this.shelves.delete(id);
    this.emit(entry, `shelf_deleted ${shelfName(id)}`, true, []);
    entry.listeners.clear();
    return ok(undefined);
  }

  listBooks(shelf: bigint): StoreResult<Book[]> {
    const entry = this.shelves.get(shelf);
    if (!entry) return shelfNotFound(shelf);
    return ok(booksOf(entry));
  }

  getBook(shelf: bigint, book: bigint): StoreResult<Book> {
    const entry = this.shelves.get(shelf);
    if (!entry) return shelfNotFound(shelf);
    const found = entry.books.get(book);
    if (!found) return bookNotFound(shelf, book);
    return ok(clone(BookSchema, found));
  }

  /** Creates a book on a shelf; id 0 means "assign the next one". */
  createBook(shelf: bigint, input: Book | undefined): StoreResult<Book> {
    const violations: FieldViolation[] = [];
    if (!input) violations.push({ field: 'book', description: 'book is required' });
    else {
      if (input.title.trim() === '') violations.push({ field: 'book.title', description: 'title must not be empty' });
      if (input.id < 0n) violations.push({ field: 'book.id', description: 'id must not be negative' });
    }
    // An unknown shelf wins over a bad book: the resource path is checked first,
    // as a REST server would route before it parses the body.
    const entry = this.shelves.get(shelf);
    if (!entry) return shelfNotFound(shelf);
    if (!input || violations.length > 0) return invalid(violations);
    const id = input.id === 0n ? this.lastBookId + 1n : input.id;
    if (this.bookIdTaken(id)) return alreadyExists(BOOK_TYPE, bookName(shelf, id));
    if (id > this.lastBookId) this.lastBookId = id;
    const book = create(BookSchema, { id, author: input.author, title: input.title });
    entry.books.set(id, book);
    this.emit(entry, `book_created ${bookName(shelf, id)}`, false);
    return ok(clone(BookSchema, book));
  }

  deleteBook(shelf: bigint, book: bigint): StoreResult<void> {
    const entry = this.shelves.get(shelf);
    if (!entry) return shelfNotFound(shelf);
    if (!entry.books.delete(book)) return bookNotFound(shelf, book);
    this.emit(entry, `book_deleted ${bookName(shelf, book)}`, false);
    return ok(undefined);
  }

  /**
   * Subscribes to a shelf's changes. The returned `initial` is the state the
   * first event applies to, taken atomically with the subscription so no
   * change can fall between them. Call `unsubscribe` when the watch ends;
   * it is idempotent.
   */
  watchShelf(
    shelf: bigint,
    listener: ShelfListener,
  ): StoreResult<{ initial: ShelfChange; unsubscribe: () => void }> {
    const entry = this.shelves.get(shelf);
    if (!entry) return shelfNotFound(shelf);
    // Wrap so the same function may subscribe twice and still unsubscribe once each.
    const own: ShelfListener = (ev) => listener(ev);
    entry.listeners.add(own);
    const initial: ShelfChange = { shelf: clone(ShelfSchema, entry.shelf), books: booksOf(entry), change: '', final: false };
    return ok({ initial, unsubscribe: () => entry.listeners.delete(own) });
  }

  /** Number of open watches, across all shelves (for tests and leak checks). */
  watcherCount(): number {
    let n = 0;
    for (const e of this.shelves.values()) n += e.listeners.size;
    return n;
  }

  private bookIdTaken(id: bigint): boolean {
    for (const e of this.shelves.values()) if (e.books.has(id)) return true;
    return false;
  }

  private emit(entry: ShelfEntry, change: string, final: boolean, books: Book[] = booksOf(entry)): void {
    const event: ShelfChange = { shelf: clone(ShelfSchema, entry.shelf), books, change, final };
    // Copy first: a listener may unsubscribe (or end its call) while we iterate.
    for (const listener of [...entry.listeners]) listener(event);
  }

  private seed(): void {
    const seedShelves: Array<[string, Array<[string, string]>]> = [
      ['Fiction', [['Herman Melville', 'Moby-Dick'], ['Mary Shelley', 'Frankenstein']]],
      ['Fantasy', [['J. R. R. Tolkien', 'The Hobbit']]],
    ];
    for (const [theme, books] of seedShelves) {
      const shelf = this.createShelf(create(ShelfSchema, { theme }));
      if (!shelf.ok) throw new Error('seed shelf rejected');
      for (const [author, title] of books) this.createBook(shelf.value.id, create(BookSchema, { author, title }));
    }
  }
}

function booksOf(entry: ShelfEntry): Book[] {
  return [...entry.books.values()].map((b) => clone(BookSchema, b)).sort(byId);
}

function byId(a: { id: bigint }, b: { id: bigint }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function ok<T>(value: T): StoreResult<T> {
  return { ok: true, value };
}

function shelfNotFound(shelf: bigint): StoreResult<never> {
  return { ok: false, error: { kind: 'shelf_not_found', shelf } };
}

function bookNotFound(shelf: bigint, book: bigint): StoreResult<never> {
  return { ok: false, error: { kind: 'book_not_found', shelf, book } };
}

function alreadyExists(resourceType: string, resourceName: string): StoreResult<never> {
  return { ok: false, error: { kind: 'already_exists', resourceType, resourceName } };
}

function invalid(violations: FieldViolation[]): StoreResult<never> {
  return { ok: false, error: { kind: 'invalid_argument', violations } };
}
