// The REST API as the page uses it: the bearer token (kept in sessionStorage), JSON calls, and
// server-sent events read from a fetch (EventSource can neither POST nor send a header).

const KEY = "kernel-app-token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const found = { ...extra };
  if (token()) found.Authorization = `Bearer ${token()}`;
  return found;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body?.error?.message || body?.detail?.[0]?.msg || message;
  } catch {
    // not JSON: the status line says enough
  }
  return new ApiError(response.status, message);
}

export async function call(method, path, body) {
  const options = { method, headers: headers() };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});

// Each SSE frame ("event: T" / "data: JSON") of a POST's answer, as the parsed data, to onEvent.
export async function stream(path, body, onEvent) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  await readEvents(response.body, onEvent);
}

export async function readEvents(readable, onEvent) {
  const reader = readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// Markdown rendered on the server (raw HTML shown as text, only http(s) links): HTML for innerHTML.
export async function render(texts) {
  const answer = await post("/web/render", { texts });
  return answer.html;
}

// A multipart upload over XMLHttpRequest, for its upload progress; the answer's events to onEvent.
export function upload(path, form, onProgress, onEvent) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    if (token()) request.setRequestHeader("Authorization", `Bearer ${token()}`);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      if (request.status >= 400) {
        let message = `${request.status} ${request.statusText}`;
        try {
          message = JSON.parse(request.responseText).error.message;
        } catch {
          // not JSON
        }
        reject(new ApiError(request.status, message));
        return;
      }
      for (const block of request.responseText.split("\n\n")) {
        const line = block.split("\n").find((l) => l.startsWith("data:"));
        if (line) onEvent(JSON.parse(line.slice(5)));
      }
      resolve();
    };
    request.onerror = () => reject(new ApiError(0, "the server could not be reached"));
    request.send(form);
  });
}
