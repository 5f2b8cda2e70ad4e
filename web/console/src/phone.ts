// A light check of numbers as people type them; the server (libphonenumber) decides.
// Accepts E.164 (`+` and 8 to 15 digits, or `00` instead of `+`) or national digits
// completed with the organization's country calling code.

const CODES =
  'AD376 AE971 AF93 AG1 AI1 AL355 AM374 AO244 AR54 AS1 AT43 AU61 AW297 AX358 AZ994 ' +
  'BA387 BB1 BD880 BE32 BF226 BG359 BH973 BI257 BJ229 BL590 BM1 BN673 BO591 BQ599 BR55 BS1 BT975 BW267 BY375 BZ501 ' +
  'CA1 CC61 CD243 CF236 CG242 CH41 CI225 CK682 CL56 CM237 CN86 CO57 CR506 CU53 CV238 CW599 CX61 CY357 CZ420 ' +
  'DE49 DJ253 DK45 DM1 DO1 DZ213 EC593 EE372 EG20 EH212 ER291 ES34 ET251 ' +
  'FI358 FJ679 FK500 FM691 FO298 FR33 ' +
  'GA241 GB44 GD1 GE995 GF594 GG44 GH233 GI350 GL299 GM220 GN224 GP590 GQ240 GR30 GT502 GU1 GW245 GY592 ' +
  'HK852 HN504 HR385 HT509 HU36 ID62 IE353 IL972 IM44 IN91 IO246 IQ964 IR98 IS354 IT39 JE44 JM1 JO962 JP81 ' +
  'KE254 KG996 KH855 KI686 KM269 KN1 KP850 KR82 KW965 KY1 KZ7 ' +
  'LA856 LB961 LC1 LI423 LK94 LR231 LS266 LT370 LU352 LV371 LY218 ' +
  'MA212 MC377 MD373 ME382 MF590 MG261 MH692 MK389 ML223 MM95 MN976 MO853 MP1 MQ596 MR222 MS1 MT356 MU230 MV960 MW265 MX52 MY60 MZ258 ' +
  'NA264 NC687 NE227 NF672 NG234 NI505 NL31 NO47 NP977 NR674 NU683 NZ64 OM968 ' +
  'PA507 PE51 PF689 PG675 PH63 PK92 PL48 PM508 PR1 PS970 PT351 PW680 PY595 QA974 RE262 RO40 RS381 RU7 RW250 ' +
  'SA966 SB677 SC248 SD249 SE46 SG65 SH290 SI386 SJ47 SK421 SL232 SM378 SN221 SO252 SR597 SS211 ST239 SV503 SX1 SY963 SZ268 ' +
  'TC1 TD235 TG228 TH66 TJ992 TK690 TL670 TM993 TN216 TO676 TR90 TT1 TV688 TW886 TZ255 ' +
  'UA380 UG256 US1 UY598 UZ998 VA39 VC1 VE58 VG1 VI1 VN84 VU678 WF681 WS685 XK383 YE967 YT262 ZA27 ZM260 ZW263';

/** ISO 3166 alpha-2 → country calling code. */
export const CALLING_CODES: Readonly<Record<string, string>> = Object.fromEntries(
  CODES.split(' ').map((e) => [e.slice(0, 2), e.slice(2)]),
);

export const COUNTRIES: readonly string[] = Object.keys(CALLING_CODES);

let names: Intl.DisplayNames | null = null;
/** The country's name in the reader's language (falls back to its code). */
export function countryName(code: string): string {
  try {
    names ??= new Intl.DisplayNames(undefined, { type: 'region' });
    return names.of(code) ?? code;
  } catch {
    return code;
  }
}

/** Countries sorted by name, for a select. */
export function countryOptions(): { code: string; name: string }[] {
  return COUNTRIES.map((code) => ({ code, name: countryName(code) })).sort((a, b) => a.name.localeCompare(b.name));
}

/** Countries whose national numbers keep their leading 0 in international form. */
const KEEPS_ZERO = new Set(['IT', 'SM', 'VA']);

export type NumberCheck =
  | { state: 'empty' }
  | { state: 'invalid'; message: string }
  | { state: 'valid'; e164: string; national: boolean };

/**
 * Strips what tel: links and the protocol handler put around a number:
 * `tel:+1-415…`, `web+pushdial:+1…`, `web+pushdial://+1…`, `;ext=…` parameters.
 */
export function fromLink(raw: string): string {
  let s = raw.trim();
  try {
    s = decodeURIComponent(s);
  } catch {
    // keep as is
  }
  s = s.replace(/^(web\+pushdial|tel|callto|sip):(\/\/)?/i, '');
  s = s.split(';')[0] ?? '';
  return s.trim();
}

/** Checks what the person typed; `country` is the organization's home country. */
export function checkNumber(input: string, country: string | null | undefined): NumberCheck {
  const raw = fromLink(input);
  if (raw === '') return { state: 'empty' };
  if (/[^0-9+\s\-.()/]/.test(raw)) {
    return { state: 'invalid', message: 'Use digits only, with an optional leading + (spaces, dashes, dots and brackets are fine).' };
  }
  const compact = raw.replace(/[\s\-.()/]/g, '');
  if (compact.indexOf('+') > 0 || (compact.match(/\+/g) ?? []).length > 1) {
    return { state: 'invalid', message: 'The + goes only at the start, before the country code.' };
  }
  let international: string | null = null;
  if (compact.startsWith('+')) international = compact.slice(1);
  else if (compact.startsWith('00')) international = compact.slice(2);
  if (international !== null) {
    if (international.startsWith('0')) return { state: 'invalid', message: 'A country code never starts with 0.' };
    if (international.length < 8) return { state: 'invalid', message: `Too short: + and 8 to 15 digits (${international.length} so far).` };
    if (international.length > 15) return { state: 'invalid', message: 'Too long: at most 15 digits after the +.' };
    return { state: 'valid', e164: `+${international}`, national: false };
  }
  const cc = country ? CALLING_CODES[country.toUpperCase()] : undefined;
  if (!cc || !country) {
    return { state: 'invalid', message: 'Start with + and the country code, like +14155550123.' };
  }
  let national = compact;
  if (cc === '1' && national.length === 11 && national.startsWith('1')) national = national.slice(1);
  else if (cc === '7' && national.length === 11 && national.startsWith('8')) national = national.slice(1);
  else if (!KEEPS_ZERO.has(country.toUpperCase()) && national.startsWith('0')) national = national.slice(1);
  const total = cc.length + national.length;
  if (national.length < 4 || total < 8) {
    return { state: 'invalid', message: `Too short for a ${countryName(country)} number — or start with + and the country code.` };
  }
  if (total > 15) return { state: 'invalid', message: 'Too long for a phone number.' };
  return { state: 'valid', e164: `+${cc}${national}`, national: true };
}
