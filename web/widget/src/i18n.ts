/** Default texts in English and Simplified Chinese; a tenant's `config.texts[lang]` wins. */
export type Lang = "en" | "zh";

export const DEFAULTS = {
  en: {
    title: "Talk to us",
    call_now: "Call me now",
    request_callback: "Request a callback",
    intro_call_now: "Leave your number and an agent calls you right away.",
    intro_callback: "Leave your number and we will call you back.",
    country_label: "Country",
    phone_label: "Phone number",
    phone_hint: "Digits only, without the country code.",
    name_label: "Name (optional)",
    consent: "I agree to be called at this number.",
    consent_required: "Please agree to be called.",
    submit: "Call me",
    sending: "Sending…",
    close: "Close",
    calling: "An agent is calling you now",
    connected: "You are connected with an agent.",
    completed: "Thank you for your call!",
    failed: "We could not reach an agent, we will call you back",
    scheduled: "Thanks! We will call you back soon.",
    invalid_number: "Please enter a valid phone number.",
    rate_limited: "Too many requests. Please try again later.",
    unavailable: "Nobody can take calls right now. Please try again later.",
    error: "Something went wrong. Please try again.",
  },
  zh: {
    title: "联系我们",
    call_now: "立即给我回电",
    request_callback: "预约回电",
    intro_call_now: "留下您的号码，客服会立即给您打电话。",
    intro_callback: "留下您的号码，我们会尽快给您回电。",
    country_label: "国家/地区",
    phone_label: "电话号码",
    phone_hint: "仅限数字，不含国家代码。",
    name_label: "姓名（可选）",
    consent: "我同意接听此号码的来电。",
    consent_required: "请同意接听来电。",
    submit: "给我回电",
    sending: "正在提交…",
    close: "关闭",
    calling: "客服正在给您打电话",
    connected: "已接通客服。",
    completed: "感谢您的来电！",
    failed: "暂时无法联系到客服，我们会尽快回电",
    scheduled: "谢谢！我们会尽快给您回电。",
    invalid_number: "请输入有效的电话号码。",
    rate_limited: "请求过于频繁，请稍后再试。",
    unavailable: "目前没有客服可以接听，请稍后再试。",
    error: "出错了，请重试。",
  },
};

export type Texts = typeof DEFAULTS.en;

/** `zh*` → zh, anything else → en. */
export function normalizeLang(tag: string | null | undefined): Lang | undefined {
  if (!tag) return undefined;
  return /^zh/i.test(tag.trim()) ? "zh" : "en";
}

/** data-lang, else `<html lang>`, else the browser's language. */
export function pickLang(dataLang: string | null | undefined): Lang {
  return (
    normalizeLang(dataLang) ||
    normalizeLang(document.documentElement.getAttribute("lang")) ||
    normalizeLang(navigator.language) ||
    "en"
  );
}

/** The defaults of `lang` with the tenant's string overrides laid over them. */
export function textsFor(lang: Lang, overrides: unknown): Texts {
  const texts: Texts = { ...DEFAULTS[lang] };
  const own = overrides && typeof overrides === "object" ? (overrides as Record<string, unknown>)[lang] : undefined;
  if (own && typeof own === "object") {
    const map = own as Record<string, unknown>;
    for (const key of Object.keys(map)) {
      const value = map[key];
      if (key in texts && typeof value === "string" && value.trim()) (texts as Record<string, string>)[key] = value;
    }
  }
  return texts;
}
