// Draws the app's PNG icons (no image files to download or commit): a white handset on
// the brand blue, antialiased by 4×4 supersampling, encoded with node:zlib.
import { deflateSync } from "node:zlib";

const BLUE = [0x0a, 0x7c, 0xff];

const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "ascii");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
function png(size, rgba) {
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Is the unit-square point (x, y) on the handset? Drawn around the centre, scale s. */
function handset(x, y, s) {
  // Work in a frame centred on the icon, rotated so the handset leans like ☎.
  const cx = (x - 0.5) / s - 0.037, cy = (y - 0.5) / s + 0.031;
  const a = Math.PI / 4;
  const u = cx * Math.cos(a) + cy * Math.sin(a);
  const v = -cx * Math.sin(a) + cy * Math.cos(a);
  // The grip: an arc of radius R around (0, -0.12), from -60° to 60° below the centre.
  const R = 0.3, w = 0.075;
  const dx = u, dy = v + 0.12;
  const ang = Math.atan2(dx, dy);
  const d = Math.hypot(dx, dy);
  if (Math.abs(ang) <= 1.05 && Math.abs(d - R) <= w) return true;
  // The ends: rounded pads across the arc at ±60°.
  for (const side of [-1, 1]) {
    const t = side * 1.05;
    const ex = Math.sin(t) * (R + 0.02), ey = Math.cos(t) * (R + 0.02) - 0.12;
    // pad axes: along the radius (long) and along the tangent (short)
    const rx = Math.sin(t), ry = Math.cos(t);
    const px = u - ex, py = v - ey;
    const along = px * rx + py * ry, across = -px * ry + py * rx;
    const L = 0.11, T = 0.09, r = 0.06;
    const qx = Math.max(Math.abs(along) - (L - r), 0), qy = Math.max(Math.abs(across) - (T - r), 0);
    if (Math.hypot(qx, qy) <= r) return true;
  }
  return false;
}

/** A rounded square (radius `round` of the size; 0 = full bleed) holding the handset at scale `s`. */
export function drawIcon(size, { round = 0.22, s = 1, background = BLUE, mono = false } = {}) {
  const rgba = Buffer.alloc(size * size * 4);
  const N = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let bg = 0, fg = 0;
      for (let sy = 0; sy < N; sy++) {
        for (let sx = 0; sx < N; sx++) {
          const x = (px + (sx + 0.5) / N) / size, y = (py + (sy + 0.5) / N) / size;
          const qx = Math.max(Math.abs(x - 0.5) - (0.5 - round), 0);
          const qy = Math.max(Math.abs(y - 0.5) - (0.5 - round), 0);
          const inside = round === 0 || Math.hypot(qx, qy) <= round;
          if (inside) bg++;
          if (inside && handset(x, y, s)) fg++;
        }
      }
      const o = (py * size + px) * 4;
      const total = N * N;
      if (mono) {
        // Badge: white handset on transparent (Android tints it).
        rgba[o] = rgba[o + 1] = rgba[o + 2] = 255;
        rgba[o + 3] = Math.round((255 * fg) / total);
      } else {
        const f = fg / Math.max(bg, 1);
        for (let c = 0; c < 3; c++) rgba[o + c] = Math.round(background[c] * (1 - f) + 255 * f);
        rgba[o + 3] = Math.round((255 * bg) / total);
      }
    }
  }
  return png(size, rgba);
}

/** Every icon the app and its manifest name. */
export function icons() {
  return {
    "icon-192.png": drawIcon(192),
    "icon-512.png": drawIcon(512),
    // Maskable: full bleed, the handset inside the 80 % safe zone.
    "maskable-512.png": drawIcon(512, { round: 0, s: 0.8 }),
    // iOS rounds the corners itself and shows transparency as black.
    "apple-touch-icon.png": drawIcon(180, { round: 0 }),
    "badge-72.png": drawIcon(72, { mono: true, s: 1.15 }),
  };
}
