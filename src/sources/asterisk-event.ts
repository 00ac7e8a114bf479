import type { EventView, Observation, SourceName } from '../guard/index.js';
import type { IpNetwork } from '../net/ip.js';
import { parseAsteriskAddress, remoteAddressOf } from './address.js';

/**
 * An Asterisk security event (AMI frame or security-log line: the same field names) as an
 * observation. Only what every event needs is read up front (name, Service, RemoteAddress);
 * AccountID, SessionID and a rule's match fields are read from the frame when asked.
 */
class AsteriskObservation implements Observation {
  readonly seenAt = performance.now();
  constructor(
    readonly source: SourceName,
    readonly event: string,
    readonly service: string,
    readonly address: IpNetwork | null,
    readonly ambiguous: boolean,
    readonly time: number,
    private readonly view: EventView,
  ) {}

  get account(): string | undefined {
    return this.view.get('AccountID');
  }

  get session(): string | undefined {
    return this.view.get('SessionID');
  }

  get(key: string): string | undefined {
    return this.view.get(key);
  }
}

/**
 * The observation of Asterisk security event `name` in field form. `ambiguous`: the source knows
 * the event is not to be trusted (a log line with a field given twice); otherwise two different
 * RemoteAddress values make it so (AmiFrame.getSingle).
 */
export function asteriskObservation(view: EventView, name: string, source: SourceName, now: number, ambiguous = false): Observation {
  const remote = ambiguous ? null : remoteAddressOf(view);
  const address = remote === null ? null : parseAsteriskAddress(remote);
  return new AsteriskObservation(source, name, view.get('Service') ?? '', address, remote === null, now, view);
}
