// The installable web agent: paired by code, registered for Web Push, and offered a call
// through push; the offer shows in the page, and "Call" acknowledges it, reports accepted
// and dialing, and opens the phone's dialer (tel:).
//
// Headless Chromium cannot reach a browser vendor's push service, so the subscription is
// the loopback Web Push service's (PushManager.subscribe answers with it): the server
// encrypts and VAPID-signs the offer for that subscription exactly as for a real browser,
// the loopback service decrypts it with the subscription's keys, and the payload is handed
// to the page's service worker as the push event the browser would have raised.
import { env, ask, step, shot, expect, scenario } from "./lib.mjs";

await scenario("agent", async (browser) => {
  const subscription = JSON.parse(env.SUBSCRIPTION);
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await context.grantPermissions(["notifications"], { origin: env.APP });
  await context.addInitScript((sub) => {
    let current = null;
    const make = () => ({
      endpoint: sub.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true, applicationServerKey: null },
      toJSON: () => sub,
      getKey: () => null,
      unsubscribe: async () => {
        current = null;
        return true;
      },
    });
    if (self.PushManager) {
      PushManager.prototype.subscribe = async function () {
        current = make();
        return current;
      };
      PushManager.prototype.getSubscription = async function () {
        return current;
      };
    }
  }, subscription);
  const page = await context.newPage();
  page.on("console", (m) => step(`page: ${m.text()}`));
  await page.goto(`${env.APP}/agent/?code=${encodeURIComponent(env.CODE)}`);
  await page.getByTestId("pair-code").waitFor();
  await shot(page, "agent-pair");
  expect((await page.getByTestId("pair-code").inputValue()).length > 0, "the code from the link is filled in");
  await page.getByTestId("pair-name").fill("Ann's Pixel");
  await page.getByTestId("pair-submit").click();
  await page.getByTestId("paired-status").waitFor({ state: "visible", timeout: 15_000 });
  const push = page.locator('[data-testid="push-status"][data-state="enabled"]');
  if (!(await push.isVisible())) {
    const enable = page.getByTestId("push-enable");
    if (await enable.isVisible()) await enable.click();
  }
  await push.waitFor({ timeout: 15_000 });
  expect(!(await page.getByTestId("push-enable").isVisible()), "no 'turn on' button once notifications are on");
  await shot(page, "agent-paired");
  const registered = await ask("device");
  expect(registered.push_channel === "webpush" && registered.presence === "push", `reachable by push: ${JSON.stringify(registered)}`);

  // A call for Ann: the server pushes the offer; it reaches the service worker.
  const { call_id, payload } = await ask("call_and_receive_push");
  expect(payload.type === "call.offer" && payload.call_id === call_id, `pushed payload ${JSON.stringify(payload)}`);
  expect(!JSON.stringify(payload).includes("+1"), "no phone number travels through the push service");
  const worker = context.serviceWorkers()[0] || (await context.waitForEvent("serviceworker"));
  await worker.evaluate((data) => {
    self.dispatchEvent(new PushEvent("push", { data: JSON.stringify(data) }));
  }, payload);
  const offer = page.locator(`[data-testid="offer"][data-call-id="${call_id}"]`);
  await offer.waitFor({ state: "visible", timeout: 15_000 });
  await shot(page, "agent-offer");
  const delivered = await ask("status", { call_id, at_least: "delivered" });
  expect(delivered.ok, `the offer was acknowledged: ${JSON.stringify(delivered)}`);
  await page.getByTestId("offer-call").click();
  const dialing = await ask("status", { call_id, at_least: "dialing" });
  expect(dialing.ok, `accepted and dialing were reported: ${JSON.stringify(dialing)}`);
  await page.waitForTimeout(300);
  await shot(page, "agent-dialing");
});
