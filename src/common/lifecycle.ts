/**
 * The daemon's parts as components: started one after the other, stopped in reverse. A start that
 * fails leaves the parts started before it to be stopped (the caller calls stop()); a stop that
 * fails is reported and the next one still runs, so the first component (the state lock) is always
 * released last.
 */

export interface Component {
  /** for the log line of a failing stop */
  readonly name: string;
  /**
   * Absent: the component is already running (built by the caller). A start that throws undoes
   * its own partial work: a component whose start failed is not stopped.
   */
  start?(): Promise<void> | void;
  stop(): Promise<void> | void;
}

export type StopFailure = (name: string, err: unknown) => void;

export class Lifecycle {
  private readonly started: Component[] = [];

  /** @param onStopFailure told of each stop that throws or rejects (the daemon logs it) */
  constructor(private readonly onStopFailure: StopFailure) {}

  /** Starts `c` (when it has a start) and adds it to what stop() stops. */
  async start<C extends Component>(c: C): Promise<C> {
    await c.start?.();
    this.started.push(c);
    return c;
  }

  /** Names of the started components, in start order. */
  names(): string[] {
    return this.started.map((c) => c.name);
  }

  /**
   * Stops every started component, the last started first; a second call stops nothing.
   * Resolves to the names of those whose stop failed (each already told to onStopFailure).
   */
  async stop(): Promise<string[]> {
    const failed: string[] = [];
    for (let c = this.started.pop(); c; c = this.started.pop()) {
      try {
        await c.stop();
      } catch (err) {
        failed.push(c.name);
        this.onStopFailure(c.name, err);
      }
    }
    return failed;
  }
}
