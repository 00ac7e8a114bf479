import type { AmiMessage } from '../ami/index.js';
import type { EventDecoder, EventView, ObservationSink } from '../guard/index.js';
import { asteriskObservation } from './asterisk-event.js';

/** An AMI event (field form) as an observation of source 'ami' (GuardOptions.decodeEvent). */
export const decodeAmiEvent: EventDecoder = (view: EventView, name: string, now: number) => asteriskObservation(view, name, 'ami', now);

/**
 * The AMI source: each AMI event some rule watches becomes an observation for `sink`; every other
 * event costs one header read (Event) and a map lookup, as before the seam.
 */
export function amiObserver(sink: ObservationSink, clock: () => number = Date.now): (msg: AmiMessage) => void {
  return (msg) => {
    const name = msg.get('Event');
    if (name === undefined || !sink.watches(name)) return;
    sink.observe(asteriskObservation(msg, name, 'ami', clock()));
  };
}
