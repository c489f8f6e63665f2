/** Fetching the API: errors become one sentence (the API's `detail`, or "offline"), never a blank page. */

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export const OFFLINE = 0;

/** The API's `detail` in words: a string as is; FastAPI's validation list as "field: reason; …". */
export async function detailOf(res: Response): Promise<string> {
  let detail = `${res.status} ${res.statusText}`.trim();
  try {
    const body = (await res.json()) as { detail?: unknown };
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) {
      detail = body.detail.map((d: { msg?: string; loc?: unknown[] }) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg ?? ""}`).join("; ");
    }
  } catch {
    /* keep the status line */
  }
  return detail;
}

/** One call; a network failure or a non-2xx answer throws an ApiError carrying the API's words. */
export async function request(url: string, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  const headers = new Headers(init.headers);
  if (!headers.has("accept")) headers.set("accept", "application/json");
  try {
    res = await fetch(url, { ...init, headers });
  } catch {
    throw new ApiError("You are offline (or the server cannot be reached): live data is unavailable.", OFFLINE);
  }
  if (!res.ok) throw new ApiError(await detailOf(res), res.status);
  return res;
}

export async function fetchText(url: string): Promise<string> {
  return (await request(url)).text();
}

export async function fetchJson<T>(url: string): Promise<T> {
  return (await request(url)).json() as Promise<T>;
}

/** A JSON body for `request`. */
export function jsonBody(method: string, body: unknown): RequestInit {
  return { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}
