// Shared by the browser scenarios. A scenario is a node script run by the Rust test suite
// (tests/it/browser.rs), which starts pushdial, the OpenID Connect provider, reference
// agents and loopback services, and answers the scenario's requests: the scenario writes
// `REQ {"op": …}` lines on stdout and reads `RES {…}` lines on stdin. Progress goes to
// stderr; screenshots to $SHOTS. Exit status 0 means every expectation held.
import { chromium } from "playwright-core";
import readline from "node:readline";
import fs from "node:fs";

export const env = process.env;

const waiting = [];
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.startsWith("RES ")) {
    const resolve = waiting.shift();
    if (resolve) resolve(JSON.parse(line.slice(4)));
  }
});

/** Asks the Rust side to do something (pair a phone, place a call, count rows …). */
export function ask(op, args = {}) {
  return new Promise((resolve) => {
    waiting.push(resolve);
    process.stdout.write(`REQ ${JSON.stringify({ op, ...args })}\n`);
  });
}

export function step(message) {
  process.stderr.write(`[e2e ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

export async function launch() {
  return chromium.launch({
    executablePath: env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

export async function shot(page, name) {
  fs.mkdirSync(env.SHOTS, { recursive: true });
  await page.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: true });
  step(`screenshot ${name}.png`);
}

export function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

/** Runs a scenario with a deadline; exits 0 on success, 1 with the error otherwise. */
export async function scenario(name, body, timeoutMs = 120_000) {
  const timer = setTimeout(() => {
    process.stderr.write(`[e2e] ${name}: timed out after ${timeoutMs} ms\n`);
    process.exit(1);
  }, timeoutMs);
  let browser;
  try {
    browser = await launch();
    await body(browser);
    step(`${name}: passed`);
    await browser.close();
    clearTimeout(timer);
    process.exit(0);
  } catch (e) {
    process.stderr.write(`[e2e] ${name}: ${e && e.stack ? e.stack : e}\n`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}
