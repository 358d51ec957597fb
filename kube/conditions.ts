/**
 * metav1.Condition helpers (pure). Cluster API's set*Condition habit: a condition's
 * lastTransitionTime moves only when its status changes, so a reconcile that finds
 * nothing new writes an identical status (and the API server keeps the object's
 * resourceVersion).
 */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/** API servers store metav1.Time at second precision; write it that way. */
export function kubeTime(now: Date): string {
  return new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Returns a new list with c set; the existing order is kept and new types are appended. */
export function setCondition(
  existing: readonly Condition[] | undefined,
  c: ConditionInput,
  now: Date,
): Condition[] {
  const list = [...(existing ?? [])];
  const i = list.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = prev && prev.status === c.status ? prev.lastTransitionTime : kubeTime(now);
  const next: Condition = { ...c, lastTransitionTime };
  if (c.observedGeneration === undefined) delete next.observedGeneration;
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** Sets every condition in order. */
export function setConditions(
  existing: readonly Condition[] | undefined,
  cs: readonly ConditionInput[],
  now: Date,
): Condition[] {
  return cs.reduce<Condition[]>((acc, c) => setCondition(acc, c, now), [...(existing ?? [])]);
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

export function isTrue(list: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(list, type)?.status === 'True';
}

/**
 * The Ready summary of per-child conditions: True when all are, otherwise False with
 * the first failing child's reason and every failing message.
 */
export function readySummary(children: readonly ConditionInput[], generation?: number): ConditionInput {
  const failing = children.filter((c) => c.status !== 'True');
  const first = failing[0];
  if (!first) {
    return {
      type: 'Ready',
      status: 'True',
      reason: 'Reconciled',
      message: 'all children are in their desired state',
      observedGeneration: generation,
    };
  }
  return {
    type: 'Ready',
    status: first.status === 'Unknown' && failing.every((c) => c.status === 'Unknown') ? 'Unknown' : 'False',
    reason: first.reason,
    message: failing.map((c) => `${c.type}: ${c.message}`).join('; '),
    observedGeneration: generation,
  };
}

/**
 * observedGeneration moves to the object's generation only when the reconcile
 * succeeded; otherwise the last successful one is kept.
 */
export function nextObservedGeneration(
  previous: number | undefined,
  generation: number | undefined,
  succeeded: boolean,
): number | undefined {
  return succeeded ? (generation ?? previous) : previous;
}
