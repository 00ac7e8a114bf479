/** One row of a benchmark's result table. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** human-readable target, e.g. ">= 400000" */
  target?: string;
  /** whether the target was met */
  ok?: boolean;
  note?: string;
}
