// Bundles src/main.ts into one minified IIFE: ../dist/widget.js.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const options = {
  absWorkingDir: here,
  entryPoints: ["src/main.ts"],
  outfile: "../dist/widget.js",
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2019", "chrome80", "firefox78", "safari13"],
  legalComments: "none",
  charset: "utf8",
  logLevel: "info",
  banner: { js: "/* pushdial widget */" },
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
