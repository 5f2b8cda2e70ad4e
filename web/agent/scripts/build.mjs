// Builds the web agent into ../dist/agent/:
//   index.html              the page (no inline script: the api's CSP allows 'self' only)
//   assets/app-<hash>.js    the page's code, assets/app-<hash>.css its styles (immutable)
//   sw.js                   the service worker (fixed name; it carries the precache list)
//   manifest.webmanifest, icons/*.png (drawn here, see icons.mjs)
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { icons } from "./icons.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = join(root, "../dist/agent");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const target = ["es2020", "chrome87", "firefox90", "safari15"];

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
mkdirSync(join(out, "icons"), { recursive: true });

const write = (rel, data) => {
  mkdirSync(dirname(join(out, rel)), { recursive: true });
  writeFileSync(join(out, rel), data);
};
const hashed = (name, ext, data) => `${name}-${createHash("sha256").update(data).digest("hex").slice(0, 10)}.${ext}`;

// The page's script and styles.
const app = await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/app.ts"],
  bundle: true,
  minify: true,
  format: "iife",
  target,
  write: false,
  legalComments: "none",
  define: { __VERSION__: JSON.stringify(pkg.version) },
});
const appJs = app.outputFiles[0].contents;
const css = await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/app.css"],
  bundle: true,
  minify: true,
  target,
  write: false,
});
const appCss = css.outputFiles[0].contents;
const jsName = hashed("app", "js", appJs);
const cssName = hashed("app", "css", appCss);
write("assets/" + jsName, appJs);
write("assets/" + cssName, appCss);

const html = readFileSync(join(root, "src/index.html"), "utf8").replace("%JS%", jsName).replace("%CSS%", cssName);
write("index.html", html);

const iconFiles = icons();
for (const [name, data] of Object.entries(iconFiles)) write("icons/" + name, data);

const manifest = {
  id: "/agent/",
  name: "pushdial agent",
  short_name: "pushdial",
  description: "Take call requests on this phone: your computer asks, this phone dials.",
  start_url: "/agent/",
  scope: "/agent/",
  display: "standalone",
  orientation: "portrait",
  background_color: "#f3f5f8",
  theme_color: "#0a7cff",
  icons: [
    { src: "/agent/icons/icon-192.png", sizes: "192x192", type: "image/png", purpose: "any" },
    { src: "/agent/icons/icon-512.png", sizes: "512x512", type: "image/png", purpose: "any" },
    { src: "/agent/icons/maskable-512.png", sizes: "512x512", type: "image/png", purpose: "maskable" },
  ],
};
write("manifest.webmanifest", JSON.stringify(manifest, null, 2) + "\n");

// The service worker last: its version is the hash of everything it caches.
const precache = ["/agent/", "/agent/assets/" + jsName, "/agent/assets/" + cssName, "/agent/manifest.webmanifest"].concat(
  Object.keys(iconFiles).map((n) => "/agent/icons/" + n),
);
const version = createHash("sha256")
  .update(html)
  .update(appJs)
  .update(appCss)
  .update(JSON.stringify(manifest))
  .digest("hex")
  .slice(0, 12);
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/sw.ts"],
  outfile: join(out, "sw.js"),
  bundle: true,
  minify: true,
  format: "iife",
  target,
  legalComments: "none",
  define: { __VERSION__: JSON.stringify(version), __PRECACHE__: JSON.stringify(precache) },
});

console.log(`web agent built in ${out}: ${jsName} (${appJs.length} B), ${cssName}, sw.js (cache ${version})`);
