/**
 * From the validated config to the guard's options and its automatic allow-list (loopback, the
 * AMI and Odoo hosts with where each entry came from). Wiring, beside main.ts.
 */
import { seconds, type GuardianConfig } from './config/index.js';
import { interfaceAddresses, loadRulesDir, type AllowEntry, type GuardOptions, type HostAddressPort, type HostAllowFeed } from './guard/index.js';
import { decodeAmiEvent } from './sources/index.js';

/**
 * Guard options from the validated config: the AMI and Odoo hosts and loopback are always allowed;
 * `resolved`: the addresses their host names resolve to (HostAllowFeed); `host`: the host's own addresses, never banned.
 */
export function guardOptions(cfg: GuardianConfig, resolved: AllowEntry[] = [], host: HostAddressPort = interfaceAddresses): GuardOptions {
  return {
    rules: loadRulesDir(cfg.guard.rulesDir),
    allow: cfg.guard.allow,
    automaticAllow: [...literalAllow(cfg), ...resolved],
    ipv6Prefix: cfg.guard.ipv6Prefix,
    scope: { widestV4: cfg.guard.widestBanIPv4, widestV6: cfg.guard.widestBanIPv6 },
    maxBanSec: seconds(cfg.guard.maxBanDuration),
    manualBanSec: seconds(cfg.guard.manualBanDuration) || null,
    host,
    maxTracked: cfg.guard.maxTracked,
    trackTtlSec: seconds(cfg.guard.trackTtl),
    escalation: { factor: cfg.guard.escalation.factor, maxSec: seconds(cfg.guard.escalation.max), lookbackSec: seconds(cfg.guard.escalation.lookback) },
    recidive: cfg.guard.recidive.enabled
      ? { bans: cfg.guard.recidive.bans, withinSec: seconds(cfg.guard.recidive.within), banSec: seconds(cfg.guard.recidive.ban) }
      : null,
    decodeEvent: decodeAmiEvent,
  };
}

/** The AMI and Odoo hosts, as written in the config, with their role. */
function configuredHosts(cfg: GuardianConfig): Array<{ host: string; role: string }> {
  const hosts: Array<{ host: string; role: string }> = [];
  if (cfg.ami.enabled && cfg.ami.host) hosts.push({ host: cfg.ami.host, role: 'AMI host' });
  const urlHost = (url: string, role: string) => {
    try {
      hosts.push({ host: new URL(url).hostname.replace(/^\[|\]$/g, ''), role });
    } catch {
      // validated elsewhere
    }
  };
  if (cfg.odoo.enabled && cfg.odoo.url) urlHost(cfg.odoo.url, 'Odoo host');
  // no decision, local or from the fleet, may cut this host off from its Local API
  if ((cfg.crowdsec.machine.enabled || cfg.crowdsec.bouncer.enabled) && cfg.crowdsec.url) urlHost(cfg.crowdsec.url, 'CrowdSec LAPI host');
  return hosts;
}

const isLiteral = (host: string): boolean => /^[0-9.]+$|:/.test(host);

/** Loopback and the hosts written as addresses, with where each came from. */
function literalAllow(cfg: GuardianConfig): AllowEntry[] {
  return [
    { entry: '127.0.0.0/8', from: 'loopback' },
    { entry: '::1', from: 'loopback' },
    ...configuredHosts(cfg)
      .filter((h) => isLiteral(h.host))
      .map((h) => ({ entry: h.host, from: `${h.role} ${h.host}` })),
  ];
}

/** The hosts written as names: resolved by the HostAllowFeed. */
export function hostNames(cfg: GuardianConfig): string[] {
  return configuredHosts(cfg)
    .filter((h) => !isLiteral(h.host))
    .map((h) => h.host);
}

/** What the host names resolve to now, as allow entries ('AMI host pbx.example.com'). */
export function resolvedAllow(cfg: GuardianConfig, feed: HostAllowFeed): AllowEntry[] {
  const roles = configuredHosts(cfg);
  return feed.byName().flatMap(({ name, addresses }) => {
    const role =
      roles
        .filter((h) => h.host === name)
        .map((h) => h.role)
        .join(' and ') || 'host';
    return addresses.map((entry) => ({ entry, from: `${role} ${name}` }));
  });
}
