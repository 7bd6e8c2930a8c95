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
}

/// The steps that make the image's processes, `restorer` the parent of
/// its roots, and notes where a parent could not be kept.
pub fn steps(img: &Image, restorer: &str) -> (Vec<(String, How)>, Vec<String>) {
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
        kids.sort_by_key(|&p| (!temporary(p), img.processes[p].table, p));
        let mut left = leaving.is_none();
        for &p in &kids {
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
        // Depth first, in image order.
        for &p in kids.iter().rev() {
            stack.push(p);
        }
    }
    (steps, notes)
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
        let (steps, notes) = steps(&img, "r");
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
