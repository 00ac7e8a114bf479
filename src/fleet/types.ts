/** The fleet's parts as the health model and `status` see them. */
import type { BouncerHealth } from './bouncer.js';
import type { RemoteSetHealth } from '../firewall/index.js';

export interface MachineHealth {
  /** false (state 'off') for the handle of a machine crowdsec.machine.enabled leaves off */
  enabled: boolean;
  state: 'ok' | 'failing' | 'off';
  /** pushes waiting in the durable queue */
  queued: number;
  maxRows: number;
  lastPushAt: number | null;
  failingSince: number | null;
  lastError: string | null;
  pushed: number;
  dropped: { expired: number; refused: number; cap: number };
}

export interface FleetHealth {
  /** the Local API's URL (never a credential: the config refuses them in the URL) */
  url: string;
  machine: MachineHealth | null;
  bouncer: (BouncerHealth & { set: RemoteSetHealth }) | null;
}
