package approval

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/astrid-go/astrid/host/internal/kvstore"
)

// An allowance is what an approve_session or approve_always answer leaves behind: upstream's
// CommandPattern "<action> *" (the action's glob characters escaped), which answers, without
// asking anyone, every later request whose resource is the action or starts with the action and
// a space, unless the resource contains a shell operator (; && || | $( ` newline > <) or a ".."
// path component. approve_session allowances last as long as the host; approve_always ones are
// kept in the host's database (the system area "allowances") and survive restarts.
//
// Unlike upstream, whose allowance store is shared by every capsule, an allowance here answers
// only the capsule whose request created it: one capsule's approved "git push" is no approval
// for another capsule's.

// Area is the system area of the persisted allowances in the host's database.
const Area = "allowances"

// MaxAllowancesPerCapsule bounds each capsule's allowances, session and persisted ones
// separately; past it, an approving answer still approves its request but leaves no allowance
// (Add says so).
const MaxAllowancesPerCapsule = 256

// Allowance is one allowance: the capsule it answers for and the (sanitised) action whose
// pattern it holds.
type Allowance struct {
	Capsule string    `json:"capsule"`
	Action  string    `json:"action"`
	Created time.Time `json:"created"`
}

// Pattern is the allowance's upstream pattern, "<escaped action> *".
func (a Allowance) Pattern() string { return EscapeGlob(a.Action) + " *" }

// Matches reports whether the allowance answers a request on resource, as upstream's
// CommandPattern matches an ExecuteCommand of the whole resource string.
func (a Allowance) Matches(resource string) bool {
	if a.Action == "" || ContainsShellOperator(resource) || hasParentDir(resource) {
		return false
	}
	// The glob "<escaped action> *": the action literally, a space, then anything ('*' crosses
	// '/', as globset's default does); or, upstream's fallback, the action alone.
	return resource == a.Action || strings.HasPrefix(resource, a.Action+" ")
}

// EscapeGlob escapes upstream's glob metacharacters (* ? [ ] { } \) with a backslash.
func EscapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]{}\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ContainsShellOperator is upstream's contains_shell_operators: a resource with one of these
// always needs an explicit answer.
func ContainsShellOperator(s string) bool {
	for _, op := range []string{";", "&&", "||", "|", "$(", "`", "\n", ">", "<"} {
		if strings.Contains(s, op) {
			return true
		}
	}
	return false
}

// hasParentDir reports whether s, read as a path, has a ".." component (upstream refuses to
// match those).
func hasParentDir(s string) bool {
	return slices.Contains(strings.Split(s, "/"), "..")
}

// Allowances are the host's allowances: those of approve_session answers in memory, those of
// approve_always answers in the host's database, opened when first needed (store). Its methods
// are safe for concurrent use.
type Allowances struct {
	store func() (*kvstore.Store, error)

	mu      sync.Mutex
	session map[string][]Allowance // by capsule
}

// NewAllowances returns the allowances of a host whose database store returns.
func NewAllowances(store func() (*kvstore.Store, error)) *Allowances {
	return &Allowances{store: store, session: map[string][]Allowance{}}
}

// Find returns the allowance of capsule that answers a request on resource, false for none.
func (a *Allowances) Find(capsule, resource string) (Allowance, bool, error) {
	a.mu.Lock()
	for _, al := range a.session[capsule] {
		if al.Matches(resource) {
			a.mu.Unlock()
			return al, true, nil
		}
	}
	a.mu.Unlock()
	st, err := a.store()
	if err != nil {
		return Allowance{}, false, fmt.Errorf("allowances: %w", err)
	}
	var found *Allowance
	err = st.SystemView(Area, func(b *bolt.Bucket) error {
		found = nil
		if b == nil {
			return nil
		}
		c := b.Cursor()
		prefix := capsule + "\x00"
		for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			var al Allowance
			if err := json.Unmarshal(v, &al); err != nil {
				continue // a damaged record answers nothing
			}
			if al.Capsule == capsule && al.Matches(resource) {
				found = &al
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return Allowance{}, false, fmt.Errorf("allowances: %w", err)
	}
	if found == nil {
		return Allowance{}, false, nil
	}
	return *found, true, nil
}

// Add records the allowance an approving decision leaves for capsule's action: for
// approve_session in memory, for approve_always in the database; other decisions, and an
// empty action, leave none (added is false). A capsule that has MaxAllowancesPerCapsule
// allowances of that kind already gets no more (an error says so).
func (a *Allowances) Add(capsule, action, decision string) (added bool, err error) {
	if action == "" {
		return false, nil
	}
	al := Allowance{Capsule: capsule, Action: action, Created: time.Now().UTC()}
	switch decision {
	case DecisionApproveSession:
		a.mu.Lock()
		defer a.mu.Unlock()
		list := a.session[capsule]
		if slices.ContainsFunc(list, func(x Allowance) bool { return x.Action == action }) {
			return true, nil
		}
		if len(list) >= MaxAllowancesPerCapsule {
			return false, fmt.Errorf("capsule %s has %d session allowances, the most one capsule may have", capsule, MaxAllowancesPerCapsule)
		}
		a.session[capsule] = append(list, al)
		return true, nil
	case DecisionApproveAlways:
		st, err := a.store()
		if err != nil {
			return false, fmt.Errorf("allowances: %w", err)
		}
		rec, err := json.Marshal(al)
		if err != nil {
			return false, err
		}
		key := []byte(capsule + "\x00" + action)
		err = st.SystemUpdate(Area, len(key)+len(rec), func(b *bolt.Bucket) error {
			if b.Get(key) != nil {
				return nil
			}
			n, prefix := 0, capsule+"\x00"
			c := b.Cursor()
			for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
				n++
			}
			if n >= MaxAllowancesPerCapsule {
				return kvstore.Refuse(fmt.Errorf("capsule %s has %d persisted allowances, the most one capsule may have", capsule, MaxAllowancesPerCapsule))
			}
			return b.Put(key, rec)
		})
		if err != nil {
			return false, fmt.Errorf("allowances: %w", err)
		}
		return true, nil
	}
	return false, nil
}
