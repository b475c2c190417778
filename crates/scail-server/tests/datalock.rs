//! Two servers on one data directory: the second must refuse to start and leave the first one's
//! running job and work folder alone (it used to requeue the job and delete the folder).

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_refuses_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 40).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let id = api.submit(KEY_A, &input(&media, 25)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Duration::from_secs(30);
    let s = api.wait_status(KEY_A, &id, "IN_PROGRESS", t).await;
    assert_eq!(s["status"], "IN_PROGRESS", "{s}");
    let work = dir.path().join("work").join(&id);
    // The folder is made as the job starts, just after it is marked running.
    let t0 = std::time::Instant::now();
    while !work.is_dir() && t0.elapsed() < t {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(work.is_dir(), "the running job has its work folder");

    let err = match scail_server::start(
        config(dir.path()),
        std::sync::Arc::new(TestGenerator {
            step_delay: Duration::from_millis(1),
        }),
    )
    .await
    {
        Ok(_) => panic!("a second server started on a locked data directory"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.contains("in use by another scail server"), "{err}");
    assert!(
        err.contains(&format!("process {}", std::process::id())),
        "{err}"
    );

    // The first server's job went on undisturbed: same folder, still running, then done.
    assert!(
        work.is_dir(),
        "the refused server left the work folder alone"
    );
    let s = api.status(KEY_A, &id).await;
    assert_eq!(s["status"], "IN_PROGRESS", "{s}");
    let done = api.wait_status(KEY_A, &id, "COMPLETED", t).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    srv.shutdown().await;

    // The lock goes with the server: a restart on the directory works.
    let again = start(dir.path(), 1).await;
    assert_eq!(
        api_for(&again).result(KEY_A, &id).await.status,
        200,
        "results survive the restart"
    );
    again.shutdown().await;
}

fn api_for(s: &scail_server::Server) -> Api {
    Api::new(&s.public_url)
}
