import {
  ExponentialBackoffRateLimiter,
  MaxOfRateLimiter,
  TokenBucketRateLimiter,
  WorkQueue,
  objectKey,
  splitKey,
} from './work-queue.js';

const noLimit = { when: () => 0, forget: () => {}, retries: () => 0 };

describe('WorkQueue', () => {
  it('de-duplicates a key that is already queued', async () => {
    const q = new WorkQueue(noLimit);
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/b');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('ns/a');
    expect(await q.get()).toBe('ns/b');
    expect(q.len()).toBe(0);
  });

  it('hands a key to one worker at a time and re-queues it when added while in flight', async () => {
    const q = new WorkQueue(noLimit);
    q.add('ns/a');
    const key = await q.get();
    expect(key).toBe('ns/a');
    q.add('ns/a'); // an event arrives while the reconcile runs
    expect(q.len()).toBe(0); // not handed to a second worker
    q.add('ns/a');
    q.done('ns/a');
    expect(q.len()).toBe(1); // queued once more, only once
    expect(await q.get()).toBe('ns/a');
    q.done('ns/a');
    expect(q.len()).toBe(0);
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const q = new WorkQueue(noLimit);
    const next = q.get();
    q.add('x');
    await expect(next).resolves.toBe('x');
    expect(q.inFlight()).toBe(1);
  });

  it('delays a key with addAfter and keeps the earliest pending delay', async () => {
    const q = new WorkQueue(noLimit);
    q.addAfter('k', 40);
    q.addAfter('k', 5_000);
    expect(q.len()).toBe(0);
    await new Promise((r) => setTimeout(r, 120));
    expect(q.len()).toBe(1);
    q.shutDown();
  });

  it('backs off a failing key through its rate limiter and forgets it on success', () => {
    const limiter = new ExponentialBackoffRateLimiter(10, 1000);
    const q = new WorkQueue(limiter);
    q.addRateLimited('k');
    q.addRateLimited('k');
    expect(q.numRequeues('k')).toBe(2);
    q.forget('k');
    expect(q.numRequeues('k')).toBe(0);
    q.shutDown();
  });

  it('returns undefined to workers after shut down and ignores later adds', async () => {
    const q = new WorkQueue(noLimit);
    const waiting = q.get();
    q.shutDown();
    await expect(waiting).resolves.toBeUndefined();
    q.add('a');
    await expect(q.get()).resolves.toBeUndefined();
  });

  it('reports its depth', () => {
    const depths: number[] = [];
    const q = new WorkQueue(noLimit, (d) => depths.push(d));
    q.add('a');
    q.add('b');
    expect(depths).toEqual([1, 2]);
  });
});

describe('rate limiters', () => {
  it('doubles per failure up to the cap, per key', () => {
    const l = new ExponentialBackoffRateLimiter(5, 100);
    expect([l.when('a'), l.when('a'), l.when('a'), l.when('a'), l.when('a'), l.when('a')]).toEqual([
      5, 10, 20, 40, 80, 100,
    ]);
    expect(l.when('b')).toBe(5);
    l.forget('a');
    expect(l.when('a')).toBe(5);
  });

  it('token bucket lets a burst through and then spaces at qps', () => {
    let t = 0;
    const l = new TokenBucketRateLimiter(10, 2, () => t);
    expect(l.when('a')).toBe(0);
    expect(l.when('b')).toBe(0);
    expect(l.when('c')).toBe(100);
    t = 1000;
    expect(l.when('d')).toBe(0);
  });

  it('max-of takes the slowest', () => {
    const l = new MaxOfRateLimiter(new ExponentialBackoffRateLimiter(50, 1000), {
      when: () => 7,
      forget: () => {},
      retries: () => 0,
    });
    expect(l.when('a')).toBe(50);
    expect(l.when('a')).toBe(100);
    expect(l.retries('a')).toBe(2);
  });
});

describe('keys', () => {
  it('are namespace/name, or name when cluster-scoped', () => {
    expect(objectKey({ namespace: 'ns', name: 'a' })).toBe('ns/a');
    expect(objectKey({ name: 'alice' })).toBe('alice');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('alice')).toEqual({ name: 'alice' });
  });
});
