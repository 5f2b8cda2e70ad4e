//! The durable queue under failure: a worker killed in the middle of a job loses nothing;
//! another worker finishes the job once the lease expires.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pushdial_core::Ctx;
use pushdial_sdk::CreateCall;

use crate::fakes::hanging_push::push_service_that_hangs_once;
use crate::harness::*;

fn start_worker(
    ctx: Ctx,
) -> (
    pushdial_core::shutdown::Trigger,
    tokio::task::JoinHandle<()>,
) {
    let (trigger, stop) = pushdial_core::shutdown::channel();
    let push = pushdial::push_gateway(&ctx).unwrap();
    let worker = pushdial_worker::Worker::new(ctx, push);
    (trigger, tokio::spawn(worker.run(stop)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_job_loses_nothing_and_another_worker_finishes_it() {
    let (push_url, pushes) = push_service_that_hangs_once().await;
    // The api alone; workers are started (and killed) by the test.
    let app = TestApp::spawn_with(
        |c| {
            c.loopback_push_url = Some(push_url);
            c.offer_timeout = Duration::from_secs(60);
        },
        pushdial::Roles {
            api: true,
            worker: false,
        },
    )
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    use_loopback_push(&device, "tok").await;
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();

    // Worker A claims the offer job and hangs inside it, sending the push.
    let (_a_stop, worker_a) = start_worker(Ctx::connect(app.config.clone()).await.unwrap());
    eventually(
        Duration::from_secs(10),
        "worker A to be inside the job",
        || async { (pushes.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    let leased: i64 = sqlx::query_scalar(
        "select count(*) from jobs where kind = 'call.offer' and lease_owner is not null",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(leased, 1, "the job is leased by worker A");
    // Kill it: no cleanup runs, the lease stays in the row.
    worker_a.abort();
    let _ = worker_a.await;

    // Worker B takes the job over once the lease expires, and sends the offer again.
    let (b_stop, worker_b) = start_worker(Ctx::connect(app.config.clone()).await.unwrap());
    eventually(
        Duration::from_secs(15),
        "worker B to send the offer",
        || async { (pushes.load(Ordering::SeqCst) >= 2).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the offer job to be completed",
        || async {
            let left: i64 =
                sqlx::query_scalar("select count(*) from jobs where kind = 'call.offer'")
                    .fetch_one(&app.db)
                    .await
                    .ok()?;
            (left == 0).then_some(())
        },
    )
    .await;
    let attempts: Option<i32> =
        sqlx::query_scalar("select max(attempts) from jobs where dead_at is not null")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(attempts, None, "no job was buried");

    // The call was offered exactly once as a transition, and the phone can take it.
    assert_eq!(client.get_call(&call.id).await.unwrap().status, "offered");
    assert_eq!(device.ack(&call.id).await.unwrap().to, "+14155550123");
    assert_eq!(
        event_trail(&client, &call.id).await,
        ["queued", "offered", "delivered"]
    );
    b_stop.stop();
    let _ = tokio::time::timeout(Duration::from_secs(5), worker_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_hands_back_unfinished_jobs_at_once() {
    let (push_url, pushes) = push_service_that_hangs_once().await;
    // Leases long enough that only an explicit hand-back can explain a quick takeover.
    let app = TestApp::spawn_with(
        |c| {
            c.loopback_push_url = Some(push_url);
            c.offer_timeout = Duration::from_secs(120);
            c.job_lease = Duration::from_secs(120);
            c.shutdown_grace = Duration::from_millis(300);
        },
        pushdial::Roles {
            api: true,
            worker: false,
        },
    )
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    use_loopback_push(&device, "tok").await;
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    let (a_stop, worker_a) = start_worker(Ctx::connect(app.config.clone()).await.unwrap());
    eventually(
        Duration::from_secs(10),
        "worker A to be inside the job",
        || async { (pushes.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;

    // SIGTERM-like stop: the job does not finish within the grace, so its lease goes back.
    a_stop.stop();
    tokio::time::timeout(Duration::from_secs(5), worker_a)
        .await
        .expect("worker A stops within its grace")
        .unwrap();
    let (owner, error): (Option<String>, Option<String>) =
        sqlx::query_as("select lease_owner, last_error from jobs where kind = 'call.offer'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(owner, None, "the lease was handed back");
    assert_eq!(error.as_deref(), Some("released by a stopping worker"));

    let (b_stop, worker_b) = start_worker(Ctx::connect(app.config.clone()).await.unwrap());
    eventually(
        Duration::from_secs(10),
        "worker B to take the job over long before the lease would expire",
        || async { (pushes.load(Ordering::SeqCst) >= 2).then_some(()) },
    )
    .await;
    assert_eq!(device.ack(&call.id).await.unwrap().to, "+14155550123");
    b_stop.stop();
    let _ = tokio::time::timeout(Duration::from_secs(5), worker_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bloated_jobs_table_is_vacuumed_by_a_worker() {
    use pushdial_core::queue;
    let db = sqlx::PgPool::connect(&fresh_database().await)
        .await
        .unwrap();
    let dead = || async {
        let n: Option<i64> =
            sqlx::query_scalar("select n_dead_tup from pg_stat_user_tables where relname = 'jobs'")
                .fetch_optional(&db)
                .await
                .unwrap();
        n.unwrap_or(0)
    };
    // As on a server with autovacuum off (this test's own database).
    sqlx::query("alter table jobs set (autovacuum_enabled = false)")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "insert into jobs (kind, payload) select 'test.noop', '{}' from generate_series(1, 3000)",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("delete from jobs").execute(&db).await.unwrap();
    // Statistics reach pg_stat a moment after the transaction.
    eventually(Duration::from_secs(15), "dead rows counted", || async {
        (dead().await >= 3000).then_some(())
    })
    .await;
    let mut conn = db.acquire().await.unwrap();
    let jobs = |tended: &[queue::Tended]| tended.iter().find(|t| t.table == "jobs").cloned();
    // Below the threshold it is not vacuumed; its 6,000 changes are analyzed, though.
    let tended = queue::tend_tables(&mut conn, 1_000_000).await.unwrap();
    assert_eq!(jobs(&tended).map(|t| t.vacuumed), Some(false), "{tended:?}");
    let tended = queue::tend_tables(&mut conn, 1000).await.unwrap();
    assert_eq!(jobs(&tended).map(|t| t.vacuumed), Some(true), "{tended:?}");
    eventually(Duration::from_secs(15), "dead rows removed", || async {
        (dead().await < 3000).then_some(())
    })
    .await;
}

/// Where autovacuum does not keep statistics, a statement a connection prepared while
/// `calls` was nearly empty keeps a plan that finds a call by walking all of its
/// organization's calls. Once a worker analyzes the grown table, the same prepared
/// statement is planned again, and finds the call by its id.
///
/// Since tenancy is in the schema, `calls` has a unique `(org_id, id)` key that this very
/// lookup uses even without statistics; the test removes it (and the foreign keys on it)
/// from its own database, to keep showing what statistics do for a statement whose best
/// index an empty table's plan misses — the case of any statement not so lucky.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_planned_on_an_empty_table_is_planned_again_once_it_has_statistics() {
    use pushdial_core::queue;
    let db = sqlx::PgPool::connect(&fresh_database().await)
        .await
        .unwrap();
    sqlx::query("alter table calls set (autovacuum_enabled = false)")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("alter table calls drop constraint calls_org_id_id_key cascade")
        .execute(&db)
        .await
        .unwrap();
    sqlx::raw_sql(
        "insert into organizations (id, name) values ('org_plan', 'plans');
         insert into agents (id, org_id, name) values ('agt_plan', 'org_plan', 'a');
         insert into calls (id, org_id, agent_id, to_number, confirm, status, expires_at)
         values ('call_first', 'org_plan', 'agt_plan', '+14155550123', 'prompt', 'queued', now());",
    )
    .execute(&db)
    .await
    .unwrap();
    // A long-lived pool connection: the statement is prepared once, its plan kept.
    let mut conn = db.acquire().await.unwrap();
    sqlx::raw_sql(
        "set plan_cache_mode = force_generic_plan;
         prepare lookup(text, text) as
           select id from calls where org_id = $1 and id = $2 for update;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    async fn plan(conn: &mut sqlx::PgConnection) -> String {
        let lines: Vec<String> =
            sqlx::query_scalar("explain execute lookup('org_plan', 'call_first')")
                .fetch_all(conn)
                .await
                .unwrap();
        lines.join("\n")
    }
    let planned_empty = plan(&mut conn).await;
    sqlx::query(
        "insert into calls (id, org_id, agent_id, to_number, confirm, status, expires_at)
         select 'call_' || i, 'org_plan', 'agt_plan', '+14155550123', 'prompt', 'completed', now()
         from generate_series(1, 20000) i",
    )
    .execute(&db)
    .await
    .unwrap();
    eventually(Duration::from_secs(15), "the inserts counted", || async {
        let n: Option<i64> = sqlx::query_scalar(
            "select n_mod_since_analyze from pg_stat_user_tables where relname = 'calls'",
        )
        .fetch_optional(&db)
        .await
        .unwrap();
        (n.unwrap_or(0) >= 20_000).then_some(())
    })
    .await;
    // Whether the index scan itself looks for the id (not a filter over the scan's rows).
    let by_id = |plan: &str| {
        plan.lines()
            .any(|l| l.contains("Index Cond") && l.contains("id = $2"))
    };
    assert!(
        !by_id(&planned_empty) && !by_id(&plan(&mut conn).await),
        "the plan made on the empty table, kept as the table grew, scans the organization:\n{planned_empty}"
    );
    let mut other = db.acquire().await.unwrap();
    let tended = queue::tend_tables(&mut other, queue::VACUUM_DEAD_ROWS)
        .await
        .unwrap();
    assert!(
        tended.contains(&queue::Tended {
            table: "calls".into(),
            vacuumed: false
        }),
        "{tended:?}"
    );
    let replanned = plan(&mut conn).await;
    assert!(
        by_id(&replanned),
        "with statistics, the call is found by its id:\n{replanned}"
    );
    // Analyzed a moment ago: not again within five minutes.
    let again = queue::tend_tables(&mut other, queue::VACUUM_DEAD_ROWS)
        .await
        .unwrap();
    assert!(!again.iter().any(|t| t.table == "calls"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_disjoint_and_a_rescued_lease_fences_out_its_old_owner() {
    use pushdial_core::queue;
    let db = sqlx::PgPool::connect(&fresh_database().await)
        .await
        .unwrap();
    for i in 0..50 {
        let mut conn = db.acquire().await.unwrap();
        queue::enqueue(&mut conn, "call.noop", &serde_json::json!({ "i": i }), None)
            .await
            .unwrap();
    }
    // Two workers claim at the same instant: SKIP LOCKED hands each job to one of them.
    let claim = |worker: &'static str| {
        let db = db.clone();
        async move {
            let mut conn = db.acquire().await.unwrap();
            queue::claim_calls(&mut conn, worker, 30, Duration::from_secs(30), 100)
                .await
                .unwrap()
        }
    };
    let (a, b) = tokio::join!(claim("a"), claim("b"));
    // A claim locks a window of due jobs wider than it takes (so that turns between
    // organizations can be chosen), so a claimer racing it may find everything locked this
    // time: what is left goes to the next claim.
    let rest = claim("b").await;
    let b: Vec<_> = b.into_iter().chain(rest).collect();
    let mut ids: Vec<i64> = a.iter().chain(b.iter()).map(|j| j.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), a.len() + b.len(), "no job claimed twice");
    assert_eq!(ids.len(), 50, "every job claimed");
    // Who holds which job does not matter below; name one of each.
    let held: Vec<(&str, &pushdial_core::queue::Job)> = a
        .iter()
        .map(|j| ("a", j))
        .chain(b.iter().map(|j| ("b", j)))
        .collect();
    let (first_owner, first) = (held[0].0, held[0].1.clone());
    let (last_owner, last) = (held[49].0, held[49].1.clone());

    // A lease that expires is rescued; the next claim is a new attempt, and the old owner
    // can neither complete nor retry the job any more.
    let mut conn = db.acquire().await.unwrap();
    let job = first;
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(job.id)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(queue::rescue(&mut conn).await.unwrap(), 1);
    let again = queue::claim_calls(&mut conn, "c", 100, Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, job.id);
    assert_eq!(again[0].attempts, job.attempts + 1);
    assert!(
        !queue::complete(&mut conn, &job, first_owner).await.unwrap(),
        "the old owner is fenced out"
    );
    assert!(
        !queue::retry(&mut conn, &job, first_owner, Duration::ZERO, "late")
            .await
            .unwrap()
    );
    assert!(queue::complete(&mut conn, &again[0], "c").await.unwrap());
    let left: i64 = sqlx::query_scalar("select count(*) from jobs where id = $1")
        .bind(job.id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // A failed job comes back after its backoff with the error kept; after its last
    // attempt it is buried, not retried forever.
    sqlx::query("update jobs set max_attempts = $2 where id = $1")
        .bind(last.id)
        .bind(last.attempts)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(
        queue::retry(&mut conn, &last, last_owner, Duration::ZERO, "boom")
            .await
            .unwrap()
    );
    let (dead, error): (bool, Option<String>) =
        sqlx::query_as("select dead_at is not null, last_error from jobs where id = $1")
            .bind(last.id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert!(dead);
    assert_eq!(error.as_deref(), Some("boom"));
    assert!(
        queue::claim_calls(&mut conn, "d", 100, Duration::from_secs(30), 100)
            .await
            .unwrap()
            .iter()
            .all(|j| j.id != last.id)
    );
}
