//! Process names and arguments are chosen by whoever runs the process. A
//! comm and argv full of terminal escapes, newlines and invalid UTF-8 are
//! rendered inert for people and kept exactly (hex) in JSON.

use std::os::unix::ffi::OsStrExt;

use spawnscope_tests::{TestCgroup, Tracer, event_for, require_root};

const EVIL: &[u8] = b"\x1b[31mevil\nname\xff";

#[test]
fn hostile_comm_and_argv_are_rendered_safely() {
    if !require_root("events_hostile_names") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join(std::ffi::OsStr::from_bytes(EVIL));
    std::os::unix::fs::symlink("/bin/true", &exe).unwrap();
    let cg = TestCgroup::new("ev-evil");
    let human = Tracer::start_plain(&["--events", "--interval", "1h"]);
    let json = Tracer::start(&["--events", "--interval", "1h"]);
    let mut c = cg
        .command(&exe)
        .arg(std::ffi::OsStr::from_bytes(b"\x1b]0;pwned\x07"))
        .arg(std::ffi::OsStr::from_bytes(b"\xe2\x80\xaeright-to-left"))
        .spawn()
        .unwrap();
    let pid = c.id();
    assert!(c.wait().unwrap().success());
    let (code, text, stderr) = human.stop_text(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, lines, stderr) = json.stop_with(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");

    // People: no byte of the name reaches the terminal raw.
    let mine: Vec<&String> = text
        .iter()
        .filter(|l| l.contains(&format!(" {pid} ")))
        .collect();
    assert_eq!(mine.len(), 2, "one exec and one exit line: {text:?}");
    for l in &mine {
        assert!(
            !l.contains('\x1b') && !l.contains('\x07') && !l.contains('\u{202e}'),
            "{l:?}"
        );
        assert!(
            l.contains("\\x1b[31mevil\\x0aname\\xff"),
            "comm escaped: {l}"
        );
    }
    let exec_line = mine.iter().find(|l| l.contains(" exec ")).unwrap();
    assert!(exec_line.contains("\\x1b]0;pwned\\x07"), "{exec_line}");
    assert!(exec_line.contains("\\u{202e}right-to-left"), "{exec_line}");

    // Programs: valid JSON, exact bytes.
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let exec = event_for(&lines, "exec", pid);
    // comm is the first 15 bytes of the file name.
    assert_eq!(
        exec["comm_hex"],
        hex(&EVIL[..15.min(EVIL.len())]).as_str(),
        "{exec}"
    );
    let mut want_file = dir.path().as_os_str().as_bytes().to_vec();
    want_file.push(b'/');
    want_file.extend_from_slice(EVIL);
    assert_eq!(exec["filename_hex"], hex(&want_file).as_str(), "{exec}");
    assert_eq!(
        exec["argv"][1], "\u{1b}]0;pwned\u{7}",
        "valid UTF-8 stays text: {exec}"
    );
    assert_eq!(exec["argv"][2], "\u{202e}right-to-left");
    assert_eq!(exec["argv_hex"][0], hex(&want_file).as_str());
}
