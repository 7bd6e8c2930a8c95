//! A vector of kernel objects indexed by small ids, with a free list.
//!
//! The kernel finds an object through a pointer; the model finds it through an
//! index into one of these, so that lookups are O(1) and the whole state can be
//! cloned (a snapshot for `--trace` and the book).

/// Storage for objects of one kind; ids are reused after removal.
#[derive(Debug, Clone)]
pub struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<u32>,
    live: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Store `value`; returns its index.
    pub fn insert(&mut self, value: T) -> u32 {
        self.live += 1;
        if let Some(i) = self.free.pop() {
            self.entries[i as usize] = Some(value);
            i
        } else {
            self.entries.push(Some(value));
            // A model with 2^32 live objects does not fit in memory first.
            u32::try_from(self.entries.len() - 1).expect("slab index fits in u32")
        }
    }

    pub fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.entries.get_mut(i as usize)?.take();
        if v.is_some() {
            self.live -= 1;
            self.free.push(i);
        }
        v
    }

    pub fn get(&self, i: u32) -> Option<&T> {
        self.entries.get(i as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.entries.get_mut(i as usize)?.as_mut()
    }

    /// One more than the highest index ever given out: every stored
    /// object's index is below it.
    pub fn capacity(&self) -> u32 {
        u32::try_from(self.entries.len()).expect("slab index fits in u32")
    }

    /// How many objects are stored.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The index the next `insert` will return.
    pub fn next_key(&self) -> u32 {
        match self.free.last() {
            Some(&i) => i,
            None => u32::try_from(self.entries.len()).expect("slab index fits in u32"),
        }
    }

    /// A slab with `f` of every object at the same index, and the same
    /// free list, so that the ids of the copy name the same objects.
    pub fn map<U>(&self, mut f: impl FnMut(u32, &T) -> U) -> Slab<U> {
        Slab {
            entries: self
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| e.as_ref().map(|v| f(i as u32, v)))
                .collect(),
            free: self.free.clone(),
            live: self.live,
        }
    }

    /// The stored objects, in index order, taken out of the slab.
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.entries.into_iter().flatten()
    }

    /// The stored objects with their indices, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|v| (i as u32, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_freed_ids() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        let c = s.insert("c");
        assert_eq!(c, a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 2);
        s.remove(b);
        assert_eq!(s.next_key(), b);
        let m = s.map(|_, v| v.len());
        assert_eq!((m.get(c), m.get(b), m.next_key()), (Some(&1), None, b));
    }
}
