import { callingCode } from "./countries";

/** Formatting characters a visitor may type or paste; anything else is not a phone number. */
const FORMATTING = /[\s\-().\/\u00a0]/g;

export type PhoneCheck =
  | { ok: true; e164: string }
  | { ok: false; reason: "empty" | "chars" | "length" };

/**
 * Assembles an E.164 number from what the visitor typed and the picked country:
 * `+<calling code><national digits without the trunk 0>` (4 to 15 digits typed). A number typed with a
 * leading `+` (or `00`) is taken as already international.
 */
export function checkPhone(input: string, country: string): PhoneCheck {
  let raw = input.replace(FORMATTING, "");
  if (!raw) return { ok: false, reason: "empty" };
  let international = false;
  if (raw[0] === "+") {
    international = true;
    raw = raw.slice(1);
  } else if (raw.startsWith("00")) {
    international = true;
    raw = raw.slice(2);
  }
  if (!/^\d+$/.test(raw)) return { ok: false, reason: "chars" };
  if (international) {
    return raw.length >= 5 && raw.length <= 15 && raw[0] !== "0"
      ? { ok: true, e164: "+" + raw }
      : { ok: false, reason: "length" };
  }
  const cc = callingCode(country) || "";
  // Italy, San Marino and the Vatican keep the leading 0 of landlines in E.164.
  const national = /^(IT|SM|VA)$/i.test(country) ? raw : raw.replace(/^0+/, "");
  if (raw.length < 4 || raw.length > 15 || national.length < 4 || cc.length + national.length > 15) {
    return { ok: false, reason: "length" };
  }
  return { ok: true, e164: "+" + cc + national };
}
