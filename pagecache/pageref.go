package pagecache

import "runtime"

// A page's reference count and its content lock share one atomic word,
// Page.state, so that a cache hit pins the page and takes the content lock
// in one compare-and-swap and drops both with one add: two atomic
// read-modify-writes per page instead of four (Linux keeps a folio's
// refcount and its flags in separate words; its hit needs no content lock,
// because a CPU's racy memcpy of a page is no data race in C's kernel
// memory model, but it is one in Go's).
//
//	bits  0..39  references; 0 means frozen (being freed): nothing may pin it
//	bits 40..61  readers copying out of the page
//	bit  62      a writer copying in
//	bit  63      never set: a negative word is an unbalanced release
//
// Every copier holds a reference, so readers or a writer imply references,
// and a word equal to a plain count has no copier: freezing is one
// compare-and-swap of the count the freezer expects to 0.
const (
	refBits     = 40
	refMask     = int64(1)<<refBits - 1
	readerShift = refBits
	readerOne   = int64(1) << readerShift
	// readerMask is the readers' field; full, it is the most goroutines
	// that can copy out of one page at once, and one more waits for a
	// reader to leave, as it would for a writer.
	readerMask = (int64(1)<<22 - 1) << readerShift
	writerBit  = int64(1) << 62
)

// refLimit is the most references a page can hold. Every reference is a
// goroutine using the page or a view entry pointing at it, so reaching it
// takes more memory than exists: it means a reference leaked. A pin there
// panics rather than wrap the count into the readers' bits.
const refLimit = refMask

const (
	msgRefOverflow  = "pagecache: page reference count overflow (a leaked reference)"
	msgRefUnderflow = "pagecache: page reference count below zero"
	msgUnbalanced   = "pagecache: page content unlock without a lock"
)

// refs returns the page's reference count.
func (p *Page) refs() int64 { return p.state.Load() & refMask }

// tryGet takes a reference unless the page is frozen.
func (p *Page) tryGet() bool {
	for {
		s := p.state.Load()
		switch s & refMask {
		case 0:
			return false
		case refLimit:
			panic(msgRefOverflow)
		}
		if p.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// get takes another reference on a page the caller holds one on.
func (p *Page) get() {
	if !p.tryGet() {
		panic("pagecache: get on a frozen page")
	}
}

// put drops a reference. The last one, which goes once the page has left
// the index (truncation, or a page that lost the race to be added), frees
// the page's frame: no one holds the page and no lookup can pin it (a count
// of 0 is frozen). Eviction frees the frame itself after freezing the count.
func (p *Page) put() {
	switch s := p.state.Add(-1); {
	case s == 0:
		freePage(p)
	case s < 0 || s&refMask == refMask:
		panic(msgRefUnderflow)
	}
}

// freeze sets a page's count from want to 0 if nobody else holds a
// reference (and so nobody copies): lookups can no longer pin it, and its
// memory may be recycled (Linux's folio_ref_freeze).
func (p *Page) freeze(want int64) bool { return p.state.CompareAndSwap(want, 0) }

// tryGetRead pins the page and takes its content lock shared in one
// compare-and-swap: the whole entry of a cache hit. It fails on a frozen
// page and waits out a writer, which holds the lock only for a memcpy.
func (p *Page) tryGetRead() bool {
	for {
		s := p.state.Load()
		switch {
		case s&refMask == 0:
			return false
		case s&refMask == refLimit:
			panic(msgRefOverflow)
		case s&writerBit != 0 || s&readerMask == readerMask:
			runtime.Gosched()
		case p.state.CompareAndSwap(s, s+readerOne+1):
			return true
		}
	}
}

// putRead drops the content lock and the reference tryGetRead took, in one
// add; like put, the last reference frees the frame (a hit on a page
// truncated while it copied).
func (p *Page) putRead() {
	switch s := p.state.Add(-(readerOne + 1)); {
	case s == 0:
		freePage(p)
	case s < 0 || s&refMask == refMask || s&readerMask == readerMask:
		panic(msgUnbalanced)
	}
}

// The content lock orders copies of the page's bytes (a data race in Go's
// memory model otherwise). Holders only copy memory, so waiters spin. The
// caller of each holds a reference.

// tryRLockContent takes the content lock shared unless a writer holds it
// or the readers are at their limit.
func (p *Page) tryRLockContent() bool {
	for {
		s := p.state.Load()
		if s&writerBit != 0 || s&readerMask == readerMask {
			return false
		}
		if p.state.CompareAndSwap(s, s+readerOne) {
			return true
		}
	}
}

func (p *Page) rlockContent() {
	for !p.tryRLockContent() {
		runtime.Gosched()
	}
}

func (p *Page) runlockContent() {
	if s := p.state.Add(-readerOne); s < 0 || s&readerMask == readerMask {
		panic(msgUnbalanced)
	}
}

// tryWLockContent takes the content lock exclusive if no one holds it.
func (p *Page) tryWLockContent() bool {
	for {
		s := p.state.Load()
		if s&(writerBit|readerMask) != 0 {
			return false
		}
		if p.state.CompareAndSwap(s, s|writerBit) {
			return true
		}
	}
}

func (p *Page) wlockContent() {
	for !p.tryWLockContent() {
		runtime.Gosched()
	}
}

func (p *Page) wunlockContent() {
	if p.state.Add(-writerBit) < 0 {
		panic(msgUnbalanced)
	}
}
