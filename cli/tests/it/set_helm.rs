//! telltale's `--set` parser against **real helm 3** (`$TELLTALE_TEST_HELM3`,
//! installed by `scripts/tools`): the same `--set`, `--set-string` and
//! `--set-file` arguments go to `helm template` on a chart that prints its
//! `.Values` as JSON, and to `telltale::render::strvals`; the two value
//! trees must be equal. Errors must be errors in both.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};
use telltale::render::strvals::{Mode, parse_into};

fn helm() -> PathBuf {
    match std::env::var_os("TELLTALE_TEST_HELM3").map(PathBuf::from) {
        Some(path) if path.is_file() => path,
        other => panic!(
            "this test needs TELLTALE_TEST_HELM3 (found {other:?}); run `scripts/tools` and \
             `. \"$(scripts/tools --env)\"` first (scripts/test does)"
        ),
    }
}

/// A chart with no defaults whose one template is `.Values` as JSON.
fn chart(dir: &Path) -> PathBuf {
    let chart = dir.join("values-echo");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: values-echo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "{}\n").unwrap();
    std::fs::write(
        chart.join("templates/values.json"),
        "{{ toJson .Values }}\n",
    )
    .unwrap();
    chart
}

/// helm's values for these flags, or its error.
fn helm_values(dir: &Path, chart: &Path, flags: &[(Mode, &str)]) -> Result<Value, String> {
    let mut cmd = Command::new(helm());
    cmd.current_dir(dir)
        .env("LC_ALL", "C")
        .args(["template", "r"])
        .arg(chart);
    for (mode, text) in flags {
        cmd.arg(mode.flag()).arg(text);
    }
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = stdout
        .lines()
        .skip_while(|l| !l.starts_with("# Source:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no rendered values in {stdout}"));
    Ok(serde_json::from_str(json).unwrap())
}

/// telltale's tree for the same flags, parsed in helm's order.
fn telltale_values(dir: &Path, flags: &[(Mode, &str)]) -> Result<Value, String> {
    let mut map = Map::new();
    for mode in [Mode::Typed, Mode::String, Mode::File] {
        for (m, text) in flags.iter().filter(|(m, _)| *m == mode) {
            let mut read =
                |p: &str| std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string());
            parse_into(text, &mut map, *m, &mut read).map_err(|e| e.message)?;
        }
    }
    Ok(Value::Object(map))
}

#[test]
fn set_flags_give_the_values_helm_gives() {
    let dir = tempfile::tempdir().unwrap();
    let chart = chart(dir.path());
    std::fs::write(dir.path().join("note.txt"), "line one\nline, two\n").unwrap();
    use Mode::{File, String as Str, Typed};
    let cases: Vec<Vec<(Mode, &str)>> = vec![
        vec![(Typed, "a.b=1,c=2")],
        vec![(Typed, r"name1=one\,two,name2=three")],
        vec![(Typed, r"a\.b.c=x,path=C:\\dir,eq=a=b")],
        vec![(
            Typed,
            "t=true,f=FALSE,z=0,lead=007,neg=-5,plus=+5,fl=1.5,e=1e3,empty=",
        )],
        vec![(Typed, "big=99999999999999999999,max=9223372036854775807")],
        vec![(Typed, "list[0]=foo,list[1]=bar")],
        vec![(Typed, "a.b[1].c=y,a.b[1].d=z")],
        vec![(Typed, "nested[0][0]=1,nested[1][1]=2")],
        vec![(Typed, "l={a,1,true},m={},after=1")],
        vec![(Typed, "list[0]={x,y}")],
        vec![
            (Typed, "list[0]=a"),
            (Typed, "list[2]=c"),
            (Typed, "m.x=1,m.y=2"),
        ],
        vec![(Str, "s=true,n=1,l={1,2}"), (Typed, "n2=1")],
        vec![(Typed, "a=1"), (Str, "a=2")],
        vec![(File, "doc=note.txt"), (Typed, "other=1")],
        vec![(Typed, "x.y=1,x.z.w=hello world")],
    ];
    for flags in &cases {
        let want = helm_values(dir.path(), &chart, flags)
            .unwrap_or_else(|e| panic!("helm refused {flags:?}: {e}"));
        let got = telltale_values(dir.path(), flags)
            .unwrap_or_else(|e| panic!("telltale refused {flags:?}: {e}"));
        assert_eq!(got, want, "flags {flags:?}");
    }
}

#[test]
fn malformed_set_flags_fail_in_helm_and_in_telltale() {
    let dir = tempfile::tempdir().unwrap();
    let chart = chart(dir.path());
    for text in [
        "name,b=1",
        "a.b",
        "list[x]=1",
        "list[-1]=1",
        "name={a,b",
        "list[0]x=1",
        "a.=1",
    ] {
        let flags = [(Mode::Typed, text)];
        assert!(
            helm_values(dir.path(), &chart, &flags).is_err(),
            "helm accepts {text}"
        );
        assert!(
            telltale_values(dir.path(), &flags).is_err(),
            "telltale accepts {text}"
        );
    }
}
