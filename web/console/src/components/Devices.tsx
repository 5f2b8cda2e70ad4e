// The signed-in member's phones with live presence, refreshed every 3 seconds.
import type { Device } from '@pushdial/sdk';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { relative, useInterval } from './ui';

export interface MyDevices {
  devices: Device[] | null;
  error: unknown;
  reachable: boolean;
  reload: () => Promise<void>;
}

/** Polls `GET /v1/devices?agent_id=` (unrevoked phones only). */
export function useDevices(agentId: string, everyMs: number | null = 3000): MyDevices {
  const [devices, setDevices] = useState<Device[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const reload = useCallback(async () => {
    try {
      const list = await unwrap(api.GET('/v1/devices', { params: { query: { agent_id: agentId, limit: 100 } } }));
      setDevices(list.data.filter((d) => !d.revoked_at));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [agentId]);
  useEffect(() => {
    setDevices(null);
    void reload();
  }, [reload]);
  useInterval(() => {
    if (document.visibilityState !== 'hidden') void reload();
  }, everyMs);
  return { devices, error, reachable: !!devices?.some((d) => d.reachable), reload };
}

export function presenceText(d: Pick<Device, 'presence' | 'last_seen_at'>, now = Date.now()): string {
  switch (d.presence) {
    case 'online':
      return 'Online';
    case 'push':
      return 'Reachable by push';
    default:
      return d.last_seen_at ? `Offline · last seen ${relative(d.last_seen_at, now)}` : 'Offline · never seen';
  }
}

export function DeviceList({ devices, now }: { devices: Device[]; now: number }) {
  return (
    <ul class="devices" aria-label="Your phones" data-testid="device-list">
      {devices.map((d) => (
        <li key={d.id} class={`device presence-${d.presence}`} data-testid="device" data-device-id={d.id} data-presence={d.presence} data-reachable={String(d.reachable)}>
          <span class="presence-dot" aria-hidden="true" />
          <span class="device-name">{d.name}</span>
          <span class="muted small">{d.platform}</span>
          <span class="device-presence" data-testid="device-presence">
            {presenceText(d, now)}
          </span>
        </li>
      ))}
    </ul>
  );
}
