//! The edge page (`GET /`) in a real headless Chromium: the real agent
//! with a token and a policy, real HTTP, HTTPS and Redis-with-AUTH flows
//! in the test's namespaces; the page asks for the token, then shows every
//! edge in the table and the graph (violations and credentials first and
//! unmistakable), a filter narrows both, the console stays clean, and it
//! stays readable with 200+ edges; `plainsight report` of the same agent
//! renders and prints. Screenshots, the report and its PDF are kept under
//! target/artefacts/.

use plainsight_tests::{
    Agent, Side, TestCert, Topology, WorkDir,
    agent::{free_port, shop_web_config},
    chromium::{Chromium, artefact},
    clients,
    servers::{
        HTTP_PORT, HTTPS_PORT, HttpAndTls,
        redis::{self, Redis},
    },
};
use serde_json::json;

const TOKEN: &str = "page-token-5d1e";

fn config(t: &Topology, token: &std::path::Path) -> String {
    format!(
        "[api]\ntoken_file = \"{}\"\n{}",
        token.display(),
        shop_web_config(t)
    )
}

/// Rows of the edge table as [client, server, port, protocol, encryption,
/// policy, flows, reasons, tls versions, ciphers], plus the row's class.
const ROWS: &str = r##"[...document.querySelectorAll("#edges tbody tr")].map(tr =>
    [tr.className, ...[...tr.cells].slice(0, 10).map(td => td.innerText.trim())])"##;

/// Chooses `value` in the select `id` as a user would (a change event).
fn set_filter(c: &mut Chromium, id: &str, value: &str) {
    c.eval(&format!(
        "(() => {{ const s = document.getElementById({id:?}); s.value = {value:?}; \
         s.dispatchEvent(new Event('change')); return s.value; }})()"
    ));
}

fn count(c: &mut Chromium, selector: &str) -> u64 {
    c.eval(&format!("document.querySelectorAll({selector:?}).length"))
        .as_u64()
        .expect("a count")
}

#[test]
fn the_page_shows_the_nodes_edges_in_a_real_browser() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let cert = TestCert::new();
    let _servers = (HttpAndTls::start(&t), Redis::start(&t, &cert));
    let dir = WorkDir::new("page");
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token file");
    let cfg = dir.join("plainsight.toml");
    std::fs::write(&cfg, config(&t, &token)).expect("config");
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();
    let agent = Agent::start(
        None,
        free_port(),
        &["--config", cfg.to_str().expect("utf-8"), "--cgroup", &cg],
    );

    // Four edges: allowed HTTP, violating HTTP over IPv6, TLS 1.3, and
    // Redis with AUTH in clear (a violation carrying credentials).
    t.curl(&format!("http://{}:{HTTP_PORT}/", t.server_ip));
    t.curl(&format!("http://[{}]:{HTTP_PORT}/", t.server_ip6));
    t.curl(&format!("https://{}:{HTTPS_PORT}/", t.server_ip));
    let auth = ["--user", redis::USER, "--pass", redis::PASSWORD];
    clients::redis_ping(&t, t.server_ip.into(), redis::PORT, &auth);

    let mut c = Chromium::start(1400, 900);
    let url = format!("http://{}/", agent.addr);
    c.navigate(&url);
    // No token yet: the API says 401 and the page asks for one.
    c.wait_until(
        "!document.getElementById('token-form').hidden",
        10,
        "the token form",
    );
    let refused = c.errors();
    assert!(
        refused.len() == 1 && refused[0].contains("401") && refused[0].contains("api/v1/edges"),
        "only the refused API call before the token: {refused:#?}"
    );
    c.eval(&format!(
        "document.getElementById('token').value = {TOKEN:?}; \
         document.getElementById('token-form').requestSubmit(); true"
    ));
    c.wait_until(
        "document.querySelectorAll('#edges tbody tr').length === 4",
        20,
        "four edges in the table",
    );

    // Reloaded in the same tab: the token is remembered, nothing is logged.
    c.events.clear();
    c.navigate(&url);
    c.wait_until(
        "document.querySelectorAll('#edges tbody tr').length === 4",
        10,
        "four edges after a reload",
    );
    assert_eq!(c.errors(), Vec::<String>::new(), "console errors");
    assert_eq!(
        c.eval("document.getElementById('token-form').hidden"),
        json!(true)
    );

    // The table: violations first, credentials first among them.
    let rows = c.eval(ROWS);
    let rows = rows.as_array().expect("rows");
    let cell = |r: usize, i: usize| rows[r][i].as_str().unwrap_or_default().to_owned();
    let port = |p: u16| p.to_string();
    assert_eq!(cell(0, 0), "violation credentials");
    assert_eq!(
        [cell(0, 1), cell(0, 2), cell(0, 3), cell(0, 4), cell(0, 6)],
        [
            "shop/frontend",
            "web/server",
            port(redis::PORT).as_str(),
            "redis",
            "violation"
        ]
    );
    assert!(cell(0, 8).contains("cleartext_credentials"), "{rows:?}");
    assert_eq!(cell(1, 0), "violation");
    assert_eq!(cell(1, 1), t.client_ip6.to_string());
    assert_eq!(
        [cell(2, 0), cell(2, 1), cell(2, 3)],
        ["allowed", "shop/frontend", port(HTTP_PORT).as_str()]
    );
    assert_eq!([cell(3, 0), cell(3, 5)], ["ok", "tls"]);
    assert!(cell(3, 9).contains("1.3 ×1"), "TLS version mix: {rows:?}");
    assert!(cell(3, 10).contains("TLS_"), "cipher mix: {rows:?}");

    // The graph: one curve per edge, coloured by policy; credentials drawn
    // apart; the namespaces as groups.
    assert_eq!(count(&mut c, "#graph path.edge"), 4);
    assert_eq!(count(&mut c, "#graph path.edge.credentials"), 1);
    assert_eq!(count(&mut c, "#graph path.edge.violation"), 1);
    assert_eq!(count(&mut c, "#graph path.edge.allowed"), 1);
    assert_eq!(count(&mut c, "#graph path.edge.ok"), 1);
    let groups =
        c.eval("[...document.querySelectorAll('#graph .group-label')].map(t => t.textContent)");
    for g in ["shop", "web", "(addresses)"] {
        assert!(
            groups.as_array().expect("labels").contains(&json!(g)),
            "{groups}"
        );
    }
    assert_eq!(
        c.eval("document.querySelector('.card.bad b').textContent"),
        json!("2")
    );
    let shot = c.screenshot(&artefact("page.png"), 900.0);
    assert!(shot > 10_000, "screenshot of {shot} bytes");

    // A filter narrows the table and the graph, and lands in the URL.
    set_filter(&mut c, "f-policy", "allowed");
    assert_eq!(count(&mut c, "#edges tbody tr"), 1);
    assert_eq!(count(&mut c, "#graph path.edge"), 1);
    assert_eq!(count(&mut c, "#graph path.edge.allowed"), 1);
    assert_eq!(c.eval("location.hash"), json!("#policy=allowed"));
    set_filter(&mut c, "f-policy", "");
    set_filter(&mut c, "f-namespace", "(addresses)");
    assert_eq!(count(&mut c, "#edges tbody tr"), 1, "the IPv6 edge only");
    set_filter(&mut c, "f-namespace", "");
    set_filter(&mut c, "f-protocol", "redis");
    assert_eq!(count(&mut c, "#graph path.edge.credentials"), 1);
    assert_eq!(count(&mut c, "#graph path.edge"), 1);
    set_filter(&mut c, "f-protocol", "");

    // The evidence report of the same agent: one HTML file rendered by
    // the same browser, on screen and printed to PDF.
    report_of(&agent, &token, &cfg, &mut c, &t);
    c.events.clear();
    c.navigate(&url);

    // 200+ edges: 210 more client addresses, one plaintext request each;
    // the live refresh picks them up, every edge is drawn, no two names
    // share a row.
    let mut script = String::new();
    for i in 0..210 {
        let addr = format!("10.77.1.{}", i + 10);
        script.push_str(&format!(
            "ip addr add {addr}/32 dev {dev} && curl -s -o /dev/null --max-time 5 \
             --interface {addr} http://{server}:{HTTP_PORT}/ || exit 1\n",
            dev = t.client_if,
            server = t.server_ip,
        ));
    }
    sh_route(&t);
    let out = t.run(Side::Client, true, &["sh", "-c", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_until(
        "document.querySelectorAll('#edges tbody tr').length === 214",
        30,
        "214 edges in the table",
    );
    assert_eq!(count(&mut c, "#graph path.edge"), 214);
    assert_eq!(count(&mut c, "#graph path.edge.violation"), 211);
    let overlap = c.eval(
        "(() => { const ys = [...document.querySelectorAll('#graph text.node')].map(t => \
           t.getAttribute('text-anchor') + t.getAttribute('y')); return ys.length - new Set(ys).size; })()",
    );
    assert_eq!(overlap, json!(0), "two names on one row");
    assert_eq!(
        c.errors(),
        Vec::<String>::new(),
        "console errors at 214 edges"
    );
    let shot = c.screenshot(&artefact("page-214-edges.png"), 1400.0);
    assert!(shot > 10_000, "screenshot of {shot} bytes");
}

/// `plainsight report` against the live agent: JSON numbers, CSV rows, and
/// the HTML in Chromium (screenshot, PDF with the edges in it).
fn report_of(
    agent: &Agent,
    token: &std::path::Path,
    cfg: &std::path::Path,
    c: &mut Chromium,
    t: &Topology,
) {
    let run = |format: &str, out: &std::path::Path| {
        let o = std::process::Command::new(plainsight_tests::plainsight_bin())
            .arg("report")
            .args(["--addr", &format!("http://{}", agent.addr)])
            .arg("--token-file")
            .arg(token)
            .arg("--config")
            .arg(cfg)
            .args(["--format", format, "-o"])
            .arg(out)
            .output()
            .expect("plainsight report");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out).expect("the report")
    };
    let json: serde_json::Value =
        serde_json::from_str(&run("json", &artefact("report.json"))).expect("JSON report");
    assert_eq!(json["summary"]["edges"], 4);
    assert_eq!(json["summary"]["flows_encrypted_percent"], 25.0);
    let plain = json["plaintext_edges"].as_array().expect("plaintext edges");
    assert_eq!(plain.len(), 3);
    assert_eq!(
        (
            plain[0]["server_port"].as_u64(),
            plain[0]["reason"].as_str()
        ),
        (Some(u64::from(redis::PORT)), Some("cleartext_credentials"))
    );
    assert_eq!(plain[2]["owner"], "team-web");
    assert_eq!(json["rules"][0]["flows_allowed"], 1);
    assert_eq!(json["tls_inventory"][0]["seen"]["tls_versions"]["1.3"], 1);
    let csv = run("csv", &artefact("report.csv"));
    assert_eq!(
        csv.lines()
            .filter(|l| l.starts_with("plaintext_edge,"))
            .count(),
        3
    );

    let html = artefact("report.html");
    run("html", &html);
    c.events.clear();
    c.navigate(&format!("file://{}", html.display()));
    assert_eq!(
        c.errors(),
        Vec::<String>::new(),
        "console errors in the report"
    );
    let text = c.eval("document.body.innerText");
    let text = text.as_str().expect("text");
    for want in [
        "shop/frontend",
        "web/server",
        "cleartext_credentials",
        "web-plain-http",
        "TLS_",
    ] {
        assert!(text.contains(want), "{want} not in the report:\n{text}");
    }
    assert!(c.screenshot(&artefact("report.png"), 1600.0) > 10_000);
    let pdf = artefact("report.pdf");
    assert!(c.print_pdf(&pdf) > 5_000);
    let pdf_text = plainsight_tests::tools::run(
        std::process::Command::new(plainsight_tests::tools::require_tool(
            "pdftotext",
            "install Debian's `poppler-utils` (`cargo xtask setup` does)",
        ))
        .arg(&pdf)
        .arg("-"),
    );
    let pdf_text = String::from_utf8_lossy(&pdf_text.stdout);
    for want in [
        "shop/frontend",
        &t.client_ip6.to_string(),
        "cleartext_credentials",
    ] {
        assert!(
            pdf_text.contains(want),
            "{want} not in the PDF:\n{pdf_text}"
        );
    }
}

/// The server answers the extra client addresses (10.77.1.0/24) through
/// the veth.
fn sh_route(t: &Topology) {
    let out = t.run(
        Side::Server,
        false,
        &["ip", "route", "add", "10.77.1.0/24", "dev", &t.server_if],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_page_can_be_switched_off() {
    plainsight_tests::require_root();
    let t = Topology::new();
    let dir = WorkDir::new("page-off");
    let cfg = dir.join("plainsight.toml");
    std::fs::write(&cfg, "[api]\npage = false\n").expect("config");
    let cg = t.cgroup.to_str().expect("utf-8").to_owned();
    let agent = Agent::start(
        None,
        free_port(),
        &["--config", cfg.to_str().expect("utf-8"), "--cgroup", &cg],
    );
    assert_eq!(agent.get("/").expect("GET /").0, 404);
    assert_eq!(agent.get("/page/page.js").expect("GET").0, 404);
    assert_eq!(agent.get("/api/v1/edges").expect("GET").0, 200);
}
