// The console with the reference agent as the phone: sign in through the loopback OpenID
// Connect provider (its real login and consent pages), create an organization, see that
// no phone is connected and no call button is offered, pair the reference agent with the
// code the Pair page shows, see the call button appear, call a number and watch the
// timeline reach `completed` live; then the call log.
import { env, ask, step, shot, expect, scenario } from "./lib.mjs";

await scenario("console", async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const foreign = [];
  // Requests the console makes (not the identity provider's own pages) stay on this origin.
  page.on("request", (r) => {
    const u = new URL(r.url());
    const fromConsole = page.url().startsWith(`${env.APP}/console`);
    if (fromConsole && u.protocol.startsWith("http") && u.origin !== env.APP && u.origin !== env.ISSUER) foreign.push(r.url());
  });
  page.on("pageerror", (e) => step(`page error: ${e.message}`));
  await page.goto(`${env.APP}/console/`);
  await page.getByTestId("signin-page").waitFor();
  await shot(page, "console-signin");
  await page.locator('[data-testid="signin-provider"][data-provider="oidc"]').click();
  // The provider's own pages: any login, then consent.
  await page.locator('input[name="login"]').waitFor();
  await page.locator('input[name="login"]').fill("alice");
  await page.locator('input[name="password"]').fill("secret");
  await page.locator('button[type="submit"]').click();
  const consent = page.locator('button[type="submit"]:has-text("Continue")');
  await Promise.race([
    consent.waitFor({ timeout: 15_000 }).then(() => consent.click()),
    page.waitForURL(`${env.APP}/console/**`, { timeout: 15_000 }),
  ]);
  await page.waitForURL(`${env.APP}/console/**`, { timeout: 15_000 });
  step(`signed in, at ${page.url()}`);

  await page.getByTestId("org-name").waitFor({ timeout: 15_000 });
  await page.getByTestId("org-name").fill("Alice Ltd");
  await shot(page, "console-new-org");
  await page.getByTestId("org-create").click();

  // No phone yet: the page says so, and there is no call button (claim step S19).
  await page.getByTestId("no-phone-notice").waitFor({ timeout: 15_000 });
  expect((await page.getByTestId("dialer-call").count()) === 0, "no call button without a reachable phone");
  await shot(page, "console-dialer-no-phone");

  // Pair the reference agent with the code the console shows.
  await page.getByTestId("nav-pair").click();
  const pairCreate = page.getByTestId("pair-create");
  if (await pairCreate.isVisible().catch(() => false)) await pairCreate.click();
  const codeBox = page.getByTestId("pair-code");
  await codeBox.waitFor({ timeout: 15_000 });
  const code = (await codeBox.textContent()).trim();
  expect(/^[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(code), `a pairing code: ${code}`);
  await page.getByTestId("pair-qr").locator("svg").waitFor();
  await shot(page, "console-pair");
  const paired = await ask("pair", { code });
  expect(paired.ok, `the reference agent paired: ${JSON.stringify(paired)}`);

  // The call button appears once the phone is reachable (claim steps S13/S14).
  await page.getByTestId("nav-dialer").click();
  await page.locator('[data-testid="device"][data-presence="online"]').waitFor({ timeout: 20_000 });
  const call = page.getByTestId("dialer-call");
  await call.waitFor({ timeout: 10_000 });
  expect((await page.getByTestId("no-phone-notice").count()) === 0, "the notice is gone");
  await page.getByTestId("dialer-number").fill("+1 415 555 0123");
  await page.locator('[data-testid="dialer-number"][data-valid="true"]').waitFor();
  await shot(page, "console-dialer-ready");
  await call.click();
  await page.getByTestId("active-call").waitFor({ timeout: 10_000 });
  await page.locator('[data-testid="timeline-entry"][data-status="completed"]').waitFor({ timeout: 30_000 });
  const statuses = await page.getByTestId("timeline-entry").evaluateAll((els) => els.map((e) => e.dataset.status));
  step(`timeline: ${statuses.join(" → ")}`);
  for (const s of ["queued", "offered", "delivered", "accepted", "dialing", "connected", "completed"]) {
    expect(statuses.includes(s), `timeline shows ${s}: ${statuses}`);
  }
  expect((await page.locator('[data-testid="call-status"][data-status="completed"]').count()) === 1, "status completed");
  await shot(page, "console-call-completed");
  const server = await ask("last_call");
  expect(server.status === "completed" && server.to === "+14155550123", `the server agrees: ${JSON.stringify(server)}`);

  // The call log lists it.
  await page.getByTestId("nav-calls").click();
  await page.locator('[data-testid="call-row"][data-status="completed"]').first().waitFor({ timeout: 10_000 });
  await shot(page, "console-calls");
  expect(foreign.length === 0, `no request left the deployment: ${foreign}`);
});
