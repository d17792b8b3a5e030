//! The progress display on a real terminal: the binary runs on a pseudo-terminal
//! (`script` from util-linux, present on every Debian system) and the test reads what it
//! drew. A database of ~66 collections must fit on a screen: an overall line, the 8
//! busiest collections, the rest summed on one line; rates read like numbers.

mod common;

use std::process::Command;

use common::World;

/// Removes ANSI escape sequences (colours, cursor moves) from a terminal's output.
fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters, then one final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(if c == '\r' { '\n' } else { c });
    }
    out
}

/// A collection line of the display: `pattern  read N  written M …/s`.
fn is_collection_line(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(4).any(|w| {
        w[0] == "read"
            && w[1].chars().all(|c| c.is_ascii_digit() || c == ',')
            && w[2] == "written"
            && w[3].chars().all(|c| c.is_ascii_digit() || c == ',')
    })
}

/// `fireshift migrate` of `world` with `flags`, on a pseudo-terminal `columns` wide
/// (`script` from util-linux): what it draws is the command's stdout.
fn migrate_on_a_terminal(world: &World, flags: &str, columns: u16) -> Command {
    let command = format!(
        "{} migrate --project {} --database {} --mongodb-uri '{}' {flags}",
        env!("CARGO_BIN_EXE_fireshift"),
        world.project,
        world.database,
        common::mongodb_uri()
    );
    let mut script = Command::new("script");
    script
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("COLUMNS", columns.to_string())
        .env("LINES", "50")
        .env_remove("NO_COLOR");
    script
}

#[tokio::test]
async fn a_terminal_shows_the_busiest_collections_and_sums_the_rest() {
    let world = World::new("terminal").await;
    world.write_demo(20).await;
    let out = migrate_on_a_terminal(
        &world,
        "--batch-size 50 --in-flight 1 --page-size 100 --log warn",
        160,
    )
    .output()
    .expect("run `script` (util-linux)");
    let screen = plain(&out.stdout);
    assert!(out.status.success(), "{screen}");
    // What was drawn before the summary table: the bars' redraws.
    let drawn = screen
        .split("\ncollection ")
        .next()
        .expect("output before the summary");
    let frames: Vec<&str> = drawn.split("all collections").skip(1).collect();
    assert!(!frames.is_empty(), "an overall line is drawn: {drawn}");
    for frame in &frames {
        let lines = frame.lines().filter(|l| is_collection_line(l)).count();
        assert!(
            lines <= 9,
            "at most 8 collections and one line for the rest, got {lines}:{frame}"
        );
    }
    assert!(
        drawn.contains("other collections"),
        "the collections beyond the 8 busiest are summed: {drawn}"
    );
    let last = frames.last().unwrap();
    assert!(last.contains("docs/s"), "{last}");
    // The final frame shows every document landed, counted per document.
    let total = fireshift_demo::expected_count(20);
    let landed = format!("{}/{} documents landed", thousands(total), thousands(total));
    assert!(last.contains(&landed), "{landed} in {last}");
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Once the copy is done, a following job draws one line with its lag on a terminal,
/// and leaves when the cutover gate passes.
#[tokio::test]
async fn a_terminal_shows_the_follow_and_its_lag() {
    let world = World::new("terminal-follow").await;
    world.write_demo(3).await;
    let follower = migrate_on_a_terminal(&world, "--follow --log warn", 200)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run `script` (util-linux)");
    // Once `status` says the follower runs, the gate records the cutover and the
    // follower leaves.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let out = world.fireshift(&["status", "--database", &world.database, "--json"], &[]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if status["jobs"][0]["follow"]["state"] == "following" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("gate");
    let gate = world.fireshift(
        &[
            "cutover",
            "--project",
            &world.project,
            "--database",
            &world.database,
        ],
        &["--timeout", "60", "--report", report.to_str().unwrap()],
    );
    assert_eq!(gate.status.code(), Some(0));
    let out = follower.wait_with_output().unwrap();
    let screen = plain(&out.stdout);
    assert!(out.status.success(), "{screen}");
    let line = screen
        .lines()
        .find(|l| l.contains("following: applied up to"))
        .unwrap_or_else(|| panic!("the follow's line is drawn: {screen}"));
    assert!(line.contains("(lag ") && line.contains("upserts"), "{line}");
    assert!(screen.contains("cut over"), "{screen}");
}
