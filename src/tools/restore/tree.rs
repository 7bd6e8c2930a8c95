//! Making the process tree: in which order, from which process, with
//! `fork` (a table of its own) or `clone(CLONE_FILES)` (its maker's
//! table), so that every process has its parent and its table as the
//! image says.
//!
//! Tables are empty while processes are made (the files come after), so a
//! process may use a table for a while and leave it: `unshare_files`
//! gives it a copy, that is a new table of its own. That makes two shapes
//! possible that a plain order of forks and clones cannot make:
//!
//! - a child in a table its parent no longer uses (`p1` clones `p2`, which
//!   clones `p3`, then unshares: `p3` shares `p1`'s table, not its
//!   parent's): the parent is made in its parent's table, makes that
//!   child, then unshares;
//! - processes that share a table without a parent among them (a shared
//!   table whose maker exited): the restorer makes them all in its own
//!   table, then unshares.
//!
//! What is still impossible (a process's table was made by a process that
//! is not its ancestor, beyond these shapes) is made by a process of that
//! table, and a note says the parent differs.

use std::collections::HashMap;

use serde::Serialize;

use crate::tools::image::Image;

/// How a process is made, or a step of making the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum How {
    Spawn,
    Fork {
        from: String,
    },
    CloneFiles {
        from: String,
    },
    /// The process leaves the table it was made in for a copy of its own.
    Unshare,
    /// The process makes a session of its own, which it leads.
    Setsid,
    /// The session leader opens `path` (a new pty's master) with `flags`,
    /// keeps it at descriptor `at`, and takes the pty as its controlling
    /// terminal (`TIOCSCTTY`).
    Terminal {
        path: String,
        flags: u32,
        at: u32,
    },
}

/// The steps that make the image's processes, `restorer` the parent of
/// its roots, and notes where a parent could not be kept. `terminals`
/// gives each session leader with a controlling terminal its
/// [`How::Terminal`] step.
pub fn steps(
    img: &Image,
    restorer: &str,
    terminals: &HashMap<usize, How>,
) -> (Vec<(String, How)>, Vec<String>) {
    const R: usize = usize::MAX;
    let name = |p: usize| {
        if p == R {
            restorer.to_string()
        } else {
            img.processes[p].name.clone()
        }
    };
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for p in &img.processes {
        children
            .entry(p.parent.unwrap_or(R))
            .or_default()
            .push(p.id);
    }
    // Instances of tables while the tree is made; which image table each
    // became (none: the restorer's, until it hands it over).
    let mut inst: HashMap<usize, usize> = HashMap::from([(R, 0)]);
    let mut became: Vec<Option<usize>> = vec![None];
    let mut of_table: HashMap<usize, usize> = HashMap::new();
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    // Processes that joined their maker's table for a while, and the table
    // they leave for.
    let mut leaves: HashMap<usize, usize> = HashMap::new();
    let sessions = Sessions {
        img,
        children: &children,
    };
    let mut stack = vec![R];
    while let Some(q) = stack.pop() {
        let mut kids = children.get(&q).cloned().unwrap_or_default();
        // Those that share the table `q` is in for a while come first,
        // then `q` leaves it; siblings that share a table come together.
        // A process made to hold a table for its children (see
        // `holds_for`) hands it to the largest group that needs one.
        let leaving = leaves.get(&q).copied();
        let passing = became[inst[&q]]
            .or_else(|| leaving.and_then(|own| holds_for(img, &children, &of_table, q, own)));
        let temporary = |p: usize| leaving.is_some() && passing == Some(img.processes[p].table);
        // A session leader makes its children in the order of its session:
        // those of the session it was made in, then it leads its own
        // (setsid), then those without its terminal, then it takes the
        // terminal, then those with it (see `Sessions`).
        let phase = |p: usize| if q == R { 0 } else { sessions.phase(q, p) };
        kids.sort_by_key(|&p| (!temporary(p), phase(p), img.processes[p].table, p));
        let mut done = 0;
        let mut advance = |steps: &mut Vec<(String, How)>, to: u8| {
            while done < to {
                done += 1;
                if q == R || !sessions.leads(q) {
                    continue;
                }
                match done {
                    1 => steps.push((name(q), How::Setsid)),
                    _ => steps.extend(terminals.get(&q).map(|t| (name(q), t.clone()))),
                }
            }
        };
        let mut left = leaving.is_none();
        for &p in &kids {
            advance(&mut steps, phase(p));
            let t = img.processes[p].table;
            if !left && !temporary(p) {
                // `q` leaves the table it was made in.
                let new = became.len();
                became.push(Some(leaves[&q]));
                of_table.insert(leaves[&q], new);
                inst.insert(q, new);
                steps.push((name(q), How::Unshare));
                left = true;
            }
            let qi = inst[&q];
            match of_table.get(&t).copied() {
                Some(i) if i == qi => {
                    steps.push((name(p), How::CloneFiles { from: name(q) }));
                    inst.insert(p, i);
                }
                Some(i) => {
                    let maker = inst
                        .iter()
                        .filter(|(&x, &j)| j == i && x != R)
                        .map(|(&x, _)| x)
                        .min()
                        .unwrap_or(R);
                    notes.push(format!(
                        "{} is made by {}, whose table it shares, not by its parent",
                        name(p),
                        name(maker)
                    ));
                    steps.push((name(p), How::CloneFiles { from: name(maker) }));
                    inst.insert(p, i);
                }
                None => {
                    let alone = kids
                        .iter()
                        .filter(|&&x| img.processes[x].table == t)
                        .count()
                        == 1;
                    let wants_ours = children.get(&p).is_some_and(|c| {
                        c.iter()
                            .any(|&g| became[qi] == Some(img.processes[g].table))
                    });
                    if alone && holds_for(img, &children, &of_table, p, t).is_some() {
                        // A table of its own to hand to its children, then
                        // a copy for itself.
                        steps.push((name(p), How::Fork { from: name(q) }));
                        let new = became.len();
                        became.push(None);
                        inst.insert(p, new);
                        leaves.insert(p, t);
                    } else if became[qi].is_none() {
                        // The restorer, or a process made to hold a table,
                        // hands its table over.
                        steps.push((name(p), How::CloneFiles { from: name(q) }));
                        became[qi] = Some(t);
                        of_table.insert(t, qi);
                        inst.insert(p, qi);
                    } else if wants_ours {
                        steps.push((name(p), How::CloneFiles { from: name(q) }));
                        inst.insert(p, qi);
                        leaves.insert(p, t);
                    } else {
                        steps.push((name(p), How::Fork { from: name(q) }));
                        let new = became.len();
                        became.push(Some(t));
                        of_table.insert(t, new);
                        inst.insert(p, new);
                    }
                }
            }
            // After a group that took the restorer's table, it takes a new
            // one for the next.
            if q == R && became[inst[&R]].is_some() {
                let next_same = kids
                    .iter()
                    .skip_while(|&&x| x != p)
                    .nth(1)
                    .is_some_and(|&x| img.processes[x].table == t);
                if !next_same {
                    steps.push((name(R), How::Unshare));
                    let new = became.len();
                    became.push(None);
                    inst.insert(R, new);
                }
            }
        }
        if !left {
            let new = became.len();
            became.push(Some(leaves[&q]));
            of_table.insert(leaves[&q], new);
            inst.insert(q, new);
            steps.push((name(q), How::Unshare));
        }
        advance(&mut steps, 2);
        // Depth first, in image order.
        for &p in kids.iter().rev() {
            stack.push(p);
        }
    }
    (steps, notes)
}

/// What a process's session is: the session it is in (by its leader) and
/// its controlling terminal.
type SessionState = (Option<usize>, Option<usize>);

/// Sessions while the tree is made. A process is in the session, and has
/// the controlling terminal, of the process that forked it, as it was at
/// that moment; only a leader changes its own, in three phases: 0 as it
/// was made, 1 after `setsid` (its own session, no terminal), 2 after it
/// takes its terminal. So a leader forks each child in the phase whose
/// state is the child's.
struct Sessions<'a> {
    img: &'a Image,
    children: &'a HashMap<usize, Vec<usize>>,
}

impl Sessions<'_> {
    fn leads(&self, p: usize) -> bool {
        self.img.processes[p].session == Some(p)
    }

    fn state(&self, p: usize) -> SessionState {
        let p = &self.img.processes[p];
        (p.session, p.ctty)
    }

    /// The state `p` must be made in: its own, unless it leads a session
    /// (its `setsid` leaves the state it was made in): then that of a
    /// child it makes before, if it has one.
    fn made_in(&self, p: usize) -> Option<SessionState> {
        if !self.leads(p) {
            return Some(self.state(p));
        }
        self.children
            .get(&p)
            .into_iter()
            .flatten()
            .find(|&&c| !self.leads(c) && self.img.processes[c].session != Some(p))
            .map(|&c| self.state(c))
    }

    /// The phase of leader `q` in which it makes child `p` (any phase of a
    /// process that leads no session: it has one).
    fn phase(&self, q: usize, p: usize) -> u8 {
        if !self.leads(q) {
            return 0;
        }
        match self.made_in(p) {
            Some((s, _)) if s != Some(q) => 0,
            Some((_, None)) => 1,
            _ => 2,
        }
    }
}

/// Where the steps leave a process in another session or with another
/// controlling terminal than the image's, one line each: made by a
/// process whose state at that moment was not the one it needs (a shape
/// the order of its maker's table steps and its session's phases cannot
/// both serve).
pub fn session_mismatches(img: &Image, steps: &[(String, How)]) -> Vec<String> {
    let index: HashMap<&str, usize> = img
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.id))
        .collect();
    let mut now: HashMap<&str, SessionState> = HashMap::new();
    for (name, how) in steps {
        let state = match how {
            How::Spawn => (None, None),
            How::Fork { from } | How::CloneFiles { from } => {
                now.get(from.as_str()).copied().unwrap_or((None, None))
            }
            How::Unshare => continue,
            How::Setsid => (index.get(name.as_str()).copied(), None),
            How::Terminal { .. } => {
                let p = index.get(name.as_str()).copied();
                let ctty = p.and_then(|p| img.processes[p].ctty);
                (now.get(name.as_str()).and_then(|s| s.0), ctty)
            }
        };
        now.insert(name, state);
    }
    img.processes
        .iter()
        .filter(|p| now.get(p.name.as_str()).copied().unwrap_or((None, None)) != (p.session, p.ctty))
        .map(|p| {
            format!(
                "{} cannot be made in its session: the process that makes it is in another state of its session then",
                p.name
            )
        })
        .collect()
}

/// The table that children of `p` share among several of them, that no
/// process uses yet and that is not `p`'s own (`own`): `p` can make them in
/// its table and then leave it. The one with the most children.
fn holds_for(
    img: &Image,
    children: &HashMap<usize, Vec<usize>>,
    of_table: &HashMap<usize, usize>,
    p: usize,
    own: usize,
) -> Option<usize> {
    let mut count: HashMap<usize, usize> = HashMap::new();
    for &c in children.get(&p).into_iter().flatten() {
        let t = img.processes[c].table;
        if t != own && !of_table.contains_key(&t) {
            *count.entry(t).or_default() += 1;
        }
    }
    count
        .into_iter()
        .filter(|&(_, n)| n >= 2)
        .max_by_key(|&(t, n)| (n, std::cmp::Reverse(t)))
        .map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ModelBackend;
    use crate::tools::restore::{differences, expected, restore, Options, Target};

    /// Restores `img` on the model and says how its processes differ.
    fn made(img: &Image) -> (Vec<String>, Vec<String>) {
        let mut m = ModelBackend::new();
        let r = restore(img, &mut m, &Options::default()).unwrap();
        let got = m.dump(None).unwrap();
        (differences(&expected(img), &got), r.notes)
    }

    #[test]
    fn a_child_in_a_table_its_parent_left() {
        // p1 clones p2, p2 clones p3, p2 unshares: p3 shares p1's table.
        let img = Image::of_tree(&[("p1", None, 0), ("p2", Some(0), 1), ("p3", Some(1), 0)]);
        let (steps, notes) = steps(&img, "r", &HashMap::new());
        assert!(notes.is_empty(), "{notes:?}");
        assert!(steps.contains(&("p2".into(), How::Unshare)), "{steps:?}");
        assert_eq!(made(&img), (vec![], vec![]));
    }

    #[test]
    fn children_sharing_a_table_their_parent_left() {
        // p1 clones p2 and p3, then unshares.
        let img = Image::of_tree(&[("p1", None, 0), ("p2", Some(0), 1), ("p3", Some(0), 1)]);
        assert_eq!(made(&img), (vec![], vec![]));
    }

    #[test]
    fn roots_sharing_a_table() {
        // Their maker is gone: the restorer makes them in its table.
        let img = Image::of_tree(&[
            ("a", None, 0),
            ("b", None, 0),
            ("c", None, 1),
            ("d", None, 1),
        ]);
        assert_eq!(made(&img), (vec![], vec![]));
    }

    #[test]
    fn what_cannot_be_made_is_said() {
        // q's table was made by p, which is not q's ancestor, and p's own
        // children hold it: q is made by p, and a note says so.
        let img = Image::of_tree(&[
            ("a", None, 0),
            ("p", Some(0), 1),
            ("x", Some(1), 1),
            ("q", Some(0), 2),
            ("y", Some(3), 1),
        ]);
        let (diff, notes) = made(&img);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("y is made by"), "{notes:?}");
        assert_eq!(diff.len(), 1, "only y's parent differs: {diff:?}");
    }
}
