/**
 * The control socket's protocol: one JSON object per line each way.
 *   {"op":"trigger","profile":"p","reason":"…"} → {"ok":true,"outcome":{…}}
 *   {"op":"status"}                              → {"ok":true,"profiles":[…],"running":[…],"queued":[…]}
 *   {"op":"list"}                                → {"ok":true,"profiles":[{name,file,enabled,triggers}]}
 * Errors: {"ok":false,"error":"…"}.
 */
export type ControlRequest = { op: 'trigger'; profile: string; reason?: string } | { op: 'status' } | { op: 'list' };

export type ControlResponse = ({ ok: true } & Record<string, unknown>) | { ok: false; error: string };

export const CONTROL_SOCKET = 'control.sock';

/** Requests are small: a line longer than this is refused and the connection closed. */
export const MAX_LINE = 64 * 1024;
