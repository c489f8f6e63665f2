/** Fetching the API: errors become one sentence (the API's `detail`, or "offline"), never a blank page. */

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export const OFFLINE = 0;

async function request(url: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: "application/json" } });
  } catch {
    throw new ApiError("You are offline (or the server cannot be reached): live data is unavailable.", OFFLINE);
  }
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { detail?: unknown };
      if (typeof body.detail === "string") detail = body.detail;
      else if (Array.isArray(body.detail)) {
        detail = body.detail.map((d: { msg?: string; loc?: unknown[] }) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg ?? ""}`).join("; ");
      }
    } catch {
      /* keep the status line */
    }
    throw new ApiError(detail, res.status);
  }
  return res;
}

export async function fetchText(url: string): Promise<string> {
  return (await request(url)).text();
}

export async function fetchJson<T>(url: string): Promise<T> {
  return (await request(url)).json() as Promise<T>;
}
