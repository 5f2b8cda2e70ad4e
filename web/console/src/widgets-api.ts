// Widgets and visitor callbacks through the typed client. The OpenAPI document leaves
// business_hours, theme and texts as free JSON; these types say what the web contract
// puts there.
import type { Callback, Widget as ApiWidget } from '@pushdial/sdk';
import { api, unwrap } from './api';

export type { Callback };

export type Day = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';
export const DAYS: Day[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

export interface BusinessHours {
  timezone: string;
  days: Partial<Record<Day, [string, string][]>>;
}

export interface WidgetTheme {
  color?: string;
  position?: 'bottom-right' | 'bottom-left';
}

export type Widget = Omit<ApiWidget, 'business_hours' | 'theme' | 'texts' | 'routing' | 'when_unavailable'> & {
  routing: 'round_robin' | 'longest_idle';
  business_hours: BusinessHours | null;
  when_unavailable: 'callback' | 'hidden';
  theme: WidgetTheme;
  texts: Record<string, Record<string, string>>;
};

export interface WidgetInput {
  name: string;
  allowed_origins: string[];
  agent_ids?: string[];
  routing?: Widget['routing'];
  business_hours?: BusinessHours | null;
  when_unavailable?: Widget['when_unavailable'];
  theme?: WidgetTheme;
  texts?: Widget['texts'];
  max_callbacks_per_hour?: number;
  max_scheduled_callbacks_per_hour?: number;
}

const typed = (w: ApiWidget) => ({ ...w, business_hours: w.business_hours ?? null, theme: w.theme ?? {}, texts: w.texts ?? {} }) as Widget;
const path = (id: string) => ({ params: { path: { widget_id: id } } });

export async function listWidgets(): Promise<{ data: Widget[]; has_more: boolean }> {
  const page = await unwrap(api.GET('/v1/widgets', { params: { query: { limit: 100 } } }));
  return { ...page, data: page.data.map(typed) };
}
export const getWidget = async (id: string) => typed(await unwrap(api.GET('/v1/widgets/{widget_id}', path(id))));
export const createWidget = async (w: WidgetInput) => typed(await unwrap(api.POST('/v1/widgets', { body: w })));
export const updateWidget = async (id: string, w: Partial<WidgetInput>) => typed(await unwrap(api.PATCH('/v1/widgets/{widget_id}', { ...path(id), body: w })));
export const deleteWidget = async (id: string) => typed(await unwrap(api.DELETE('/v1/widgets/{widget_id}', path(id))));

export function listCallbacks(startingAfter?: string) {
  return unwrap(api.GET('/v1/callbacks', { params: { query: { limit: 50, ...(startingAfter ? { starting_after: startingAfter } : {}) } } }));
}
