//! `record`: add, edit, show, list, import.

use super::*;

pub(crate) fn parse_fields(args: &[String]) -> Result<Vec<(String, FieldValue)>> {
    args.iter()
        .map(|a| {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| anyhow!("--field `{}` is not KEY=VALUE", casesync_node::short(a)))?;
            let k = k.trim();
            casesync_schema::record::check_field_name(k)?;
            if v.trim().is_empty() {
                bail!("--field {k}= has no value; to remove a field use --unset {k}");
            }
            Ok((k.to_string(), FieldValue::Str(v.to_string())))
        })
        .collect()
}

pub(crate) fn print_record(cli: &Cli, v: &RecordView) -> Result<()> {
    if cli.json {
        return print_json(v);
    }
    outln!("id:            {}", v.id);
    outln!("type:          {}", v.record_type);
    outln!("case:          {}", v.case);
    for (k, val) in &v.fields {
        outln!("  {k}: {}", val.as_text());
    }
    if let Some(g) = &v.grading {
        outln!("grading:       {g}");
    }
    outln!("handling:      {} ({})", v.handling, v.handling.meaning());
    if !v.releasable_to.is_empty() {
        outln!("releasable to: {}", v.releasable_to.join(", "));
    }
    outln!("originator:    {}", v.originator);
    outln!("created:       {}", v.created);
    outln!("updated:       {}", v.updated);
    for (k, val) in &v.extra {
        outln!("  (newer) {k}: {val}");
    }
    Ok(())
}

pub(crate) fn summary(v: &RecordView) -> String {
    v.summary()
}

pub(crate) fn record_command(cli: &Cli, cmd: &RecordCommand) -> Result<ExitCode> {
    let node = unlock(cli)?;
    let actor = actor_of(cli);
    match cmd {
        RecordCommand::Add {
            case,
            record_type,
            fields,
            file,
            grading,
            releasable_to,
            handling,
        } => {
            let mut input = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    import::parse_json_line(1, text.trim())
                        .with_context(|| format!("in {}", path.display()))?
                }
                None => {
                    let t = record_type
                        .as_deref()
                        .ok_or_else(|| anyhow!("--type is required (or --file RECORD.json)"))?;
                    casesync_schema::record::RecordInput {
                        handling: Default::default(),
                        record_type: t.parse()?,
                        fields: Default::default(),
                        grading: None,
                        releasable_to: ReleasableTo::default(),
                    }
                }
            };
            if let (Some(t), Some(_)) = (record_type, file) {
                input.record_type = t.parse()?;
            }
            for (k, v) in parse_fields(&fields.fields)? {
                input.fields.insert(k, v);
            }
            if let Some(g) = grading {
                input.grading = Some(casesync_schema::record::parse_grading(g)?);
            }
            if let Some(r) = releasable_to {
                input.releasable_to = ReleasableTo::parse_list(r)?;
            }
            if let Some(h) = handling {
                input.handling = h.parse().map_err(|e: String| anyhow!("--handling: {e}"))?;
            }
            let v = records::add(&node, &actor, case, input)?;
            if cli.json {
                print_json(&v)?;
            } else {
                outln!("{}", v.id);
            }
        }
        RecordCommand::Edit {
            record,
            fields,
            unset,
        } => {
            let set = parse_fields(&fields.fields)?;
            if set.is_empty() && unset.is_empty() {
                bail!("nothing to change: give --field KEY=VALUE or --unset KEY");
            }
            let v = records::edit(&node, &actor, record, set, unset.clone())?;
            if cli.json {
                print_json(&v)?;
            } else {
                outln!("{}", v.id);
            }
        }
        RecordCommand::Regrade {
            record,
            grading,
            handling,
            reason,
        } => {
            let change = records::Regrade {
                grading: grading
                    .as_deref()
                    .map(casesync_schema::record::parse_grading)
                    .transpose()?,
                handling: handling
                    .as_deref()
                    .map(|h| h.parse().map_err(|e: String| anyhow!("--handling: {e}")))
                    .transpose()?,
            };
            let v = records::regrade(&node, &actor, record, &change, reason)?;
            if cli.json {
                print_json(&v)?;
            } else {
                outln!(
                    "record {}: grading {}, handling {}",
                    v.id,
                    v.grading.as_deref().unwrap_or("none"),
                    v.handling
                );
            }
        }
        RecordCommand::Show { record } => {
            let v = records::show(&node, &actor, record)?;
            print_record(cli, &v)?;
        }
        RecordCommand::Erase { record, reason } => {
            let started = casesync_node::erasure::erase(&node, &actor, record, reason)?;
            if cli.json {
                print_json(&started)?;
            } else if started.requested {
                outln!(
                    "asked, as its originator, for the erasure of record {} of case {} (request {}): a lead's node erases it from every member when the request reaches it; see `casesync record erasure {}`",
                    started.record,
                    started.case,
                    &started.erasure[..12],
                    started.record
                );
            } else {
                outln!(
                    "erased record {} of case {} here (erasure {}); each member erases it as the erasure reaches it and signs a receipt: see `casesync record erasure {}`",
                    started.record,
                    started.case,
                    &started.erasure[..12],
                    started.record
                );
            }
        }
        RecordCommand::Provenance { record } => {
            let p = casesync_node::provenance::show(&node, &actor, record)?;
            if cli.json {
                print_json(&p)?;
            } else {
                outln!("record {} of case {}:", p.record, p.case);
                for h in &p.holders {
                    let reads = match (h.reads, h.readers) {
                        (Some(r), Some(p)) => format!(", read {r} time(s) by {p} person(s)"),
                        _ => String::new(),
                    };
                    outln!(
                        "  {}  {} ({})  {}{}{}{}",
                        h.node,
                        h.name,
                        h.org,
                        h.state,
                        h.since
                            .as_ref()
                            .map(|s| format!(" since {s}"))
                            .unwrap_or_default(),
                        reads,
                        match (&h.reported, &h.report) {
                            (Some(t), Some(r)) => format!(" (signed report {r}, {t})"),
                            _ => String::new(),
                        }
                    );
                }
            }
        }
        RecordCommand::Erasure { record } => {
            let st = casesync_node::erasure::status(&node, &actor, record)?;
            if cli.json {
                print_json(&st)?;
            } else {
                outln!(
                    "record {} of case {}: erased by {} at {} (erasure {})",
                    st.record,
                    st.case,
                    st.erased_by,
                    casesync_node::clock::format_ms(st.erased_ms),
                    &st.erasure[..12]
                );
                if let Some(r) = &st.reason {
                    outln!("reason: {r}");
                }
                for m in &st.members {
                    match &m.receipt {
                        Some(r) => outln!(
                            "  {} {} ({}): erased, receipt {} signed {}",
                            m.node,
                            m.name,
                            m.org,
                            &r.operation[..12],
                            casesync_node::clock::format_ms(r.signed_ms)
                        ),
                        None => outln!("  {} {} ({}): pending", m.node, m.name, m.org),
                    }
                }
                if st.copies_before.is_empty() {
                    outln!("no export or bundle of the record is in this node's audit log");
                } else {
                    outln!(
                        "copies made before the erasure, out of its reach ({}):",
                        st.copies_before.len()
                    );
                    for a in &st.copies_before {
                        outln!(
                            "  {} {} by {}{}",
                            a.time,
                            a.action,
                            a.operator,
                            a.peer
                                .as_deref()
                                .map(|p| format!(" to {p}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
        RecordCommand::History { record } => {
            let steps = records::history(&node, &actor, record)?;
            if cli.json {
                print_json(&steps)?;
            } else {
                for h in &steps {
                    let mut what = Vec::new();
                    for (k, v) in &h.step.set {
                        what.push(format!("{k}={}", v.as_text()));
                    }
                    for k in &h.step.unset {
                        what.push(format!("-{k}"));
                    }
                    if let Some(g) = &h.step.grading {
                        what.push(format!("grading {g}"));
                    }
                    if let Some(r) = &h.step.releasable_to {
                        what.push(format!("releasable to {}", r.join(",")));
                    }
                    let who = if h.name.is_empty() {
                        h.node.clone()
                    } else {
                        format!("{} ({})", h.name, h.org)
                    };
                    let verb = if h.step.created { "created" } else { "changed" };
                    outln!("{}  {:<28} {verb}: {}", h.time, who, what.join("; "));
                }
            }
        }
        RecordCommand::List {
            case,
            record_type,
            limit,
            after,
        } => {
            let t: Option<RecordType> = record_type.as_deref().map(str::parse).transpose()?;
            if limit == &Some(0) || limit.is_some_and(|n| n > records::MAX_LIST_PAGE) {
                bail!("--limit takes 1 to {} records", records::MAX_LIST_PAGE);
            }
            // Written as they come, through one buffer: a case of millions
            // of records is never held whole.
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut first = true;
            let mut write = |v: &casesync_schema::doc::RecordView| -> casesync_node::Result<()> {
                let line = if cli.json {
                    let item = serde_json::to_string_pretty(v)
                        .map_err(|e| casesync_node::NodeError::Io(e.to_string()))?;
                    let sep = if first { "[\n" } else { ",\n" };
                    format!("{sep}{item}")
                } else {
                    let code = v.handling.to_string();
                    format!(
                        "{}  {:<13}  {}  {}\n",
                        v.id,
                        v.record_type,
                        &code[..2],
                        summary(v)
                    )
                };
                first = false;
                out.write_all(line.as_bytes())
                    .unwrap_or_else(|e| stdout_failed(e));
                Ok(())
            };
            let listed = match limit {
                Some(n) => {
                    let page = records::list_page(&node, &actor, case, t, after.as_deref(), *n)?;
                    for v in &page {
                        write(v)?;
                    }
                    page.len()
                }
                None => records::list_each(&node, &actor, case, t, &mut write)?,
            };
            let tail = match (cli.json, listed) {
                (true, 0) => "[]\n".to_string(),
                (true, _) => "\n]\n".to_string(),
                (false, n) => format!("{n} record(s)\n"),
            };
            out.write_all(tail.as_bytes())
                .and_then(|_| out.flush())
                .unwrap_or_else(|e| stdout_failed(e));
        }
        RecordCommand::Import { case, file, format } => {
            let mut f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let mut head = [0u8; 64];
            let n = f
                .read(&mut head)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let fmt = match format.as_deref() {
                Some("csv") => import::Format::Csv,
                Some(_) => import::Format::JsonLines,
                None => import::Format::detect(&file.to_string_lossy(), &head[..n]),
            };
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let bar = progress_bar(file)?;
            let mut source: Box<
                dyn Iterator<
                    Item = casesync_node::Result<(usize, casesync_schema::record::RecordInput)>,
                >,
            > = match fmt {
                import::Format::JsonLines => Box::new(import::json_lines(f)),
                import::Format::Csv => Box::new(import::csv_rows(f)?),
            };
            let report = records::import(&node, &actor, case, &mut source, &mut |n| {
                if let Some(b) = &bar {
                    b.set_position(n as u64);
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if cli.json {
                print_json(&json!({"imported": report.records}))?;
            } else {
                outln!("imported {} record(s)", report.records);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr, only when stderr is a terminal (never in scripts).
pub(crate) fn progress_bar(file: &std::path::Path) -> Result<Option<indicatif::ProgressBar>> {
    if !std::io::stderr().is_terminal() {
        return Ok(None);
    }
    let mut lines = 0u64;
    let mut f = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let bar = indicatif::ProgressBar::new(lines);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "importing {bar:30} {pos}/{len} records, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Ok(Some(bar))
}
