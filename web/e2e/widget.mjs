// The widget on a tenant's page (a second loopback origin): it renders in a shadow root
// that the page's CSS cannot reach, a visitor asks to be called, and watches the live
// status until an agent's phone completed the call; in Chinese on a zh page; and nothing
// at all on a page of an origin the widget does not allow.
import { env, ask, step, shot, expect, scenario } from "./lib.mjs";

const W = "[data-pushdial-widget]";

await scenario("widget", async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on("console", (m) => step(`page: ${m.text()}`));
  step(`open ${env.SHOP_OK}`);
  await page.goto(env.SHOP_OK);
  const launcher = page.locator(`${W} [data-testid="launcher"]`);
  await launcher.waitFor({ timeout: 15_000 });
  expect((await launcher.textContent()).includes("Call me now"), "launcher says Call me now");
  // The host page's hostile CSS (button { all: unset; color: red }) does not reach it.
  const color = await launcher.evaluate((el) => getComputedStyle(el).color);
  expect(color !== "rgb(255, 0, 0)", `the page's CSS leaked into the widget (${color})`);
  await shot(page, "widget-closed");
  await launcher.click();
  await page.locator(`${W} [data-testid="form"]`).waitFor();
  await page.locator(`${W} [data-testid="phone"]`).fill("415 555 0123");
  await page.locator(`${W} [data-testid="name"]`).fill("Vera");
  await page.locator(`${W} [data-testid="consent"]`).check();
  await shot(page, "widget-form");
  await page.locator(`${W} [data-testid="submit"]`).click();
  const status = page.locator(`${W} [data-testid="status"]`);
  await status.and(page.locator('[data-status="calling"], [data-status="connected"], [data-status="completed"]')).waitFor({ timeout: 15_000 });
  step(`status ${await status.getAttribute("data-status")}: ${await status.textContent()}`);
  await shot(page, "widget-calling");
  await page.locator(`${W} [data-testid="status"][data-status="completed"]`).waitFor({ timeout: 30_000 });
  await shot(page, "widget-completed");
  const placed = await ask("calls");
  expect(placed.count === 1 && placed.to === "+14155550123", `one call to the visitor: ${JSON.stringify(placed)}`);

  // A Chinese page gets Chinese texts.
  const zh = await browser.newPage();
  await zh.goto(env.SHOP_OK + "zh");
  const zhLauncher = zh.locator(`${W} [data-testid="launcher"]`);
  await zhLauncher.waitFor({ timeout: 15_000 });
  const zhText = await zhLauncher.textContent();
  expect(/[\u4e00-\u9fff]/.test(zhText), `launcher in Chinese: ${zhText}`);
  await shot(zh, "widget-zh");

  // A page of another origin: the key is refused, nothing renders, nothing is written.
  const bad = await browser.newPage();
  // The api answers 403 without a CORS grant, so the browser fails the request.
  const refused = new Promise((resolve) => {
    bad.on("requestfailed", (r) => r.url().includes("/widget/v1/config") && r.method() === "GET" && resolve(`failed: ${r.failure()?.errorText}`));
    bad.on("response", (r) => r.url().includes("/widget/v1/config") && r.request().method() === "GET" && resolve(`answered ${r.status()}`));
  });
  await bad.goto(env.SHOP_BAD);
  const outcome = await refused;
  step(`config from a foreign origin: ${outcome}`);
  expect(outcome.startsWith("failed") || outcome === "answered 403", `config from a foreign origin: ${outcome}`);
  await bad.waitForTimeout(500);
  expect((await bad.locator(W).count()) === 0, "no widget on a foreign origin");
  await shot(bad, "widget-foreign-origin");
  const after = await ask("calls");
  expect(after.count === 1, "still one call");
});
