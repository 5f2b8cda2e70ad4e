/**
 * pushdial widget: `<script src="https://HOST/widget.js" data-key="pd_pk_…" async></script>`.
 *
 * Finds its own tag, reads the widget config from the api that served it, and (unless the
 * widget is hidden) renders a launcher and a callback form in a shadow root. A submitted
 * request is followed live over Server-Sent Events. No cookies, no storage, no requests
 * anywhere but the api origin.
 */
import { callingCode, callingCodes, countryName } from "./countries";
import { Lang, pickLang, Texts, textsFor } from "./i18n";
import { checkPhone } from "./phone";
import { CSS } from "./styles";

type Mode = "call_now" | "callback" | "hidden";
type Status = "calling" | "connected" | "completed" | "failed" | "scheduled" | "error";

interface Config {
  widget_id?: string;
  available?: boolean;
  mode?: Mode;
  country?: string;
  allowed_countries?: string[];
  theme?: { color?: string; position?: string };
  texts?: unknown;
}

interface Problem {
  status?: number;
  code?: string;
  detail?: string;
  errors?: { field: string; message: string }[];
}

// The server ends the stream at each of these; closing it here stops EventSource from
// reconnecting.
const TERMINAL: Status[] = ["completed", "failed", "scheduled"];
const PHONE_PATH =
  "M6.6 10.8a15.2 15.2 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z";

/** The handset icon, built node by node (no innerHTML, so Trusted Types pages are fine). */
function phoneIcon(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", PHONE_PATH);
  svg.appendChild(path);
  return svg;
}

/**
 * Styles the shadow root: a constructed stylesheet where supported (a host page's CSP
 * `style-src` does not apply to it), else a `<style>` element.
 */
function addStyles(root: ShadowRoot, css: string): void {
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    (root as ShadowRoot & { adoptedStyleSheets: CSSStyleSheet[] }).adoptedStyleSheets = [sheet];
  } catch {
    root.appendChild(el("style", {}, css));
  }
}

/** The `<script>` tag that loaded us: currentScript, else the last `…/widget.js` tag with a key. */
function findScript(): HTMLScriptElement | null {
  const current = document.currentScript as HTMLScriptElement | null;
  if (current && current.src) return current;
  const tags = document.querySelectorAll<HTMLScriptElement>("script[src]");
  for (let i = tags.length - 1; i >= 0; i--) {
    const tag = tags[i];
    if (/\/widget\.js(?:[?#].*)?$/.test(tag.src) && tag.hasAttribute("data-key") && !tag.hasAttribute("data-pushdial-loaded")) {
      return tag;
    }
  }
  return null;
}

/** A safe CSS colour (#rgb, #rrggbb, with optional alpha), or the default blue. */
function brandColor(value: unknown): string {
  return typeof value === "string" && /^#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.test(value) ? value : "#0a7cff";
}

/** Black or white, whichever reads better on the brand colour (WCAG relative luminance). */
function textOn(hex: string): string {
  let h = hex.slice(1);
  if (h.length < 6) h = h.split("").map((c) => c + c).join("");
  const lin = (i: number) => {
    const c = parseInt(h.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  };
  const l = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
  return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? "#111" : "#fff";
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const key in attrs) node.setAttribute(key, attrs[key]);
  if (text !== undefined) node.textContent = text;
  return node;
}

class Widget {
  private readonly root: ShadowRoot;
  private readonly panel: HTMLDivElement;
  private readonly launcher: HTMLButtonElement;
  private readonly form: HTMLFormElement;
  private readonly country: HTMLSelectElement;
  private readonly cc: HTMLSpanElement;
  private readonly phone: HTMLInputElement;
  private readonly phoneErr: HTMLParagraphElement;
  private readonly name: HTMLInputElement;
  private readonly consent: HTMLInputElement;
  private readonly consentErr: HTMLParagraphElement;
  private readonly submit: HTMLButtonElement;
  private readonly status: HTMLDivElement;
  private readonly again: HTMLButtonElement;
  private phoneTouched = false;
  private events: EventSource | null = null;
  private done = false;

  constructor(
    private readonly api: string,
    private readonly key: string,
    private readonly lang: Lang,
    private readonly t: Texts,
    config: Config,
    position: string,
  ) {
    const host = document.createElement("pushdial-widget");
    host.setAttribute("data-pushdial-widget", "");
    this.root = host.attachShadow({ mode: "open" });
    const color = brandColor(config.theme && config.theme.color);

    addStyles(this.root, CSS + `:host{--c:${color};--f:${textOn(color)}}`);

    const wrap = el("div", { class: "pd " + (position === "bottom-left" ? "left" : "right"), lang: this.lang === "zh" ? "zh-Hans" : "en" });
    this.panel = el("div", { class: "panel", id: "pd-panel", role: "dialog", "aria-modal": "true", "aria-labelledby": "pd-title", hidden: "" });

    const head = el("div", { class: "head" });
    head.appendChild(el("h2", { id: "pd-title" }, this.t.title));
    const close = el("button", { type: "button", class: "x", "aria-label": this.t.close, "data-testid": "close" }, "×");
    close.addEventListener("click", () => this.close());
    head.appendChild(close);
    this.panel.appendChild(head);
    this.panel.appendChild(el("p", { class: "intro" }, config.mode === "call_now" ? this.t.intro_call_now : this.t.intro_callback));

    this.form = el("form", { "data-testid": "form", novalidate: "" });
    this.form.appendChild(el("label", { for: "pd-country" }, this.t.country_label));
    this.country = el("select", { id: "pd-country", "data-testid": "country", autocomplete: "country" });
    this.fillCountries(config);
    this.form.appendChild(this.country);

    this.form.appendChild(el("label", { for: "pd-phone" }, this.t.phone_label));
    const tel = el("div", { class: "tel" });
    this.cc = el("span", { class: "cc", "aria-hidden": "true" });
    this.phone = el("input", {
      id: "pd-phone",
      type: "tel",
      inputmode: "tel",
      autocomplete: "tel-national",
      maxlength: "24",
      required: "",
      "aria-describedby": "pd-phone-hint pd-phone-err",
      "data-testid": "phone",
    });
    tel.appendChild(this.cc);
    tel.appendChild(this.phone);
    this.form.appendChild(tel);
    this.form.appendChild(el("p", { class: "hint", id: "pd-phone-hint" }, this.t.phone_hint));
    this.phoneErr = el("p", { class: "err", id: "pd-phone-err", "data-testid": "phone-error" });
    this.form.appendChild(this.phoneErr);

    this.form.appendChild(el("label", { for: "pd-name" }, this.t.name_label));
    this.name = el("input", { id: "pd-name", type: "text", autocomplete: "name", maxlength: "100", "data-testid": "name" });
    this.form.appendChild(this.name);

    const check = el("label", { class: "check" });
    this.consent = el("input", { type: "checkbox", id: "pd-consent", required: "", "aria-describedby": "pd-consent-err", "data-testid": "consent" });
    check.appendChild(this.consent);
    check.appendChild(el("span", {}, this.t.consent));
    this.form.appendChild(check);
    this.consentErr = el("p", { class: "err", id: "pd-consent-err" });
    this.form.appendChild(this.consentErr);

    this.submit = el("button", { type: "submit", class: "go", "data-testid": "submit" }, this.t.submit);
    this.form.appendChild(this.submit);
    this.panel.appendChild(this.form);

    this.status = el("div", { class: "status", role: "status", "aria-live": "polite", "data-testid": "status" });
    this.panel.appendChild(this.status);
    this.again = el("button", { type: "button", class: "go again", hidden: "" }, this.t.close);
    this.again.addEventListener("click", () => this.close());
    this.panel.appendChild(this.again);

    this.launcher = el("button", { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": "pd-panel", "aria-haspopup": "dialog", "data-testid": "launcher" });
    this.launcher.appendChild(phoneIcon());
    this.launcher.appendChild(el("span", {}, config.mode === "call_now" ? this.t.call_now : this.t.request_callback));
    this.launcher.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close()));

    wrap.appendChild(this.panel);
    wrap.appendChild(this.launcher);
    this.root.appendChild(wrap);

    this.country.addEventListener("change", () => {
      this.cc.textContent = "+" + (callingCode(this.country.value) || "");
      this.validatePhone(false);
    });
    this.phone.addEventListener("input", () => this.validatePhone(false));
    this.phone.addEventListener("blur", () => {
      if (this.phone.value) this.phoneTouched = true;
      this.validatePhone(false);
    });
    this.consent.addEventListener("change", () => {
      if (this.consent.checked) this.setError(this.consent, this.consentErr, "");
    });
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.send();
    });
    this.panel.addEventListener("keydown", (e) => this.onKey(e));
    this.cc.textContent = "+" + (callingCode(this.country.value) || "");

    document.body.appendChild(host);
  }

  private fillCountries(config: Config): void {
    const known = callingCodes();
    let list = (config.allowed_countries || []).map((c) => String(c).toUpperCase()).filter((c) => known[c]);
    if (!list.length) list = Object.keys(known);
    const named = list.map((iso) => ({ iso, name: countryName(iso, this.lang) }));
    named.sort((a, b) => a.name.localeCompare(b.name, this.lang === "zh" ? "zh-Hans" : "en"));
    named.forEach((c) => this.country.appendChild(el("option", { value: c.iso }, `${c.name} (+${known[c.iso]})`)));
    const wanted = String(config.country || "").toUpperCase();
    this.country.value = list.indexOf(wanted) >= 0 ? wanted : named[0].iso;
  }

  private open(): void {
    if (this.done) this.reset();
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    (this.form.hidden ? this.focusables()[0] : this.phone).focus();
  }

  private close(): void {
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.focus();
  }

  /** After a finished request, the next opening starts a new one. */
  private reset(): void {
    this.done = false;
    this.form.hidden = false;
    this.again.hidden = true;
    this.phone.value = "";
    this.phoneTouched = false;
    this.consent.checked = false;
    this.setStatus(null, "");
    this.validatePhone(false);
  }

  private focusables(): HTMLElement[] {
    const all = this.panel.querySelectorAll<HTMLElement>("button,input,select,[tabindex]");
    return Array.prototype.filter.call(all, (n: HTMLElement) => !(n as HTMLButtonElement).disabled && n.getClientRects().length > 0) as HTMLElement[];
  }

  /** Escape closes; Tab cycles inside the open panel. */
  private onKey(e: KeyboardEvent): void {
    if (e.key === "Escape") {
      e.preventDefault();
      this.close();
    } else if (e.key === "Tab") {
      const items = this.focusables();
      if (!items.length) return;
      const first = items[0];
      const last = items[items.length - 1];
      const active = this.root.activeElement;
      if (e.shiftKey && (active === first || !this.panel.contains(active))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && active === last) {
        e.preventDefault();
        first.focus();
      }
    }
  }

  private setError(input: HTMLElement, box: HTMLElement, message: string): void {
    box.textContent = message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /** Checks the number; shows the error at once for stray characters, for length once touched. */
  private validatePhone(force: boolean): string | null {
    const result = checkPhone(this.phone.value, this.country.value);
    if (result.ok) {
      this.setError(this.phone, this.phoneErr, "");
      return result.e164;
    }
    const show = force || result.reason === "chars" || (this.phoneTouched && result.reason === "length");
    this.setError(this.phone, this.phoneErr, show ? this.t.invalid_number : "");
    return null;
  }

  private setStatus(status: Status | null, text: string): void {
    if (status) this.status.setAttribute("data-status", status);
    else this.status.removeAttribute("data-status");
    this.status.textContent = text;
  }

  private showStatus(status: string): void {
    const known: Record<string, string> = {
      calling: this.t.calling,
      connected: this.t.connected,
      completed: this.t.completed,
      failed: this.t.failed,
      scheduled: this.t.scheduled,
    };
    if (!(status in known)) return;
    this.setStatus(status as Status, known[status]);
    if (TERMINAL.indexOf(status as Status) >= 0) {
      this.done = true;
      if (this.events) this.events.close();
      this.events = null;
    }
  }

  private async send(): Promise<void> {
    const e164 = this.validatePhone(true);
    if (!this.consent.checked) this.setError(this.consent, this.consentErr, this.t.consent_required);
    if (!e164) return this.phone.focus();
    if (!this.consent.checked) return this.consent.focus();

    this.submit.disabled = true;
    this.submit.textContent = this.t.sending;
    this.form.setAttribute("aria-busy", "true");
    this.setStatus(null, "");
    const body: Record<string, unknown> = { phone: e164, country: this.country.value, consent: true, locale: this.lang };
    const name = this.name.value.trim();
    if (name) body.name = name;
    try {
      const res = await fetch(this.api + "/widget/v1/callbacks", {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { Authorization: "Bearer " + this.key, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const data = await res.json().catch(() => ({}));
      if (res.status === 201 || res.ok) {
        this.accepted(data);
      } else {
        this.refused(res.status, data as Problem);
      }
    } catch {
      this.setStatus("error", this.t.error);
    } finally {
      this.submit.disabled = false;
      this.submit.textContent = this.t.submit;
      this.form.removeAttribute("aria-busy");
    }
  }

  private refused(http: number, problem: Problem): void {
    const code = problem.code;
    let text = this.t.error;
    if (http === 429 || code === "rate_limited") text = this.t.rate_limited;
    // 503: the site's limits cannot be checked just now (they never fail open), or the
    // service is busy: either way, later.
    else if (code === "unavailable" || http === 503) text = this.t.unavailable;
    else if (code === "number_not_callable") text = this.t.invalid_number;
    else if (code === "validation_failed" && (problem.errors || []).some((f) => f.field === "phone")) text = this.t.invalid_number;
    else if (http >= 400 && http < 500 && problem.detail) text = problem.detail;
    if (text === this.t.invalid_number) {
      this.setError(this.phone, this.phoneErr, text);
    }
    this.setStatus("error", text);
  }

  private accepted(data: { status?: string; stream_url?: string }): void {
    this.form.hidden = true;
    this.again.hidden = false;
    this.showStatus(data.status === "calling" ? "calling" : "scheduled");
    this.again.focus();
    // A request taken for later has nothing more to tell.
    if (this.done || data.status !== "calling" || !data.stream_url || typeof EventSource === "undefined") return;
    let url: string;
    try {
      url = new URL(data.stream_url, this.api).href;
    } catch {
      return;
    }
    if (new URL(url).origin !== this.api) return;
    const events = new EventSource(url);
    this.events = events;
    const onStatus = (ev: MessageEvent) => {
      try {
        const status = JSON.parse(ev.data).status;
        if (typeof status === "string") this.showStatus(status);
      } catch {
        /* not ours */
      }
    };
    events.addEventListener("status", onStatus as EventListener);
    events.onmessage = onStatus;
    events.onerror = () => {
      // The browser reconnects by itself while CONNECTING; CLOSED means it gave up.
      if (events.readyState === 2 && this.events === events) this.events = null;
    };
  }
}

async function boot(script: HTMLScriptElement): Promise<void> {
  const key = script.getAttribute("data-key") || "";
  if (!key) return console.warn("pushdial widget: data-key is missing");
  const api = new URL(script.src, location.href).origin;
  const res = await fetch(api + "/widget/v1/config", {
    mode: "cors",
    credentials: "omit",
    cache: "no-store",
    headers: { Authorization: "Bearer " + key },
  });
  if (!res.ok) return console.warn("pushdial widget: config refused (" + res.status + ")");
  const config = (await res.json()) as Config;
  if (config.mode !== "call_now" && config.mode !== "callback") return;
  const lang = pickLang(script.getAttribute("data-lang"));
  const position = script.getAttribute("data-position") || (config.theme && config.theme.position) || "bottom-right";
  const start = () => new Widget(api, key, lang, textsFor(lang, config.texts), config, position);
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
}

const script = findScript();
// One widget per key, however many times the tag (or the file) is included.
const started = ((window as unknown as { __pushdialKeys?: Record<string, true> }).__pushdialKeys ||= {});
const scriptKey = script ? script.getAttribute("data-key") || "" : "";
if (script && !script.hasAttribute("data-pushdial-loaded") && !started[scriptKey]) {
  script.setAttribute("data-pushdial-loaded", "");
  started[scriptKey] = true;
  boot(script).catch((e) => console.warn("pushdial widget: not shown (" + ((e && e.message) || e) + ")"));
}
