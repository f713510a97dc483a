package hostfn

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLayout pins what Define and CallerPtr assume of wasmtime-go's types: a Caller is just its
// wasmtime_caller_t pointer, and Linker and FuncType start with their C pointer.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		v     any
		field string
		only  bool
	}{
		{wasmtime.Caller{}, "ptr", true},
		{wasmtime.Linker{}, "_ptr", false},
		{wasmtime.FuncType{}, "_ptr", false},
	} {
		ty := reflect.TypeOf(c.v)
		f := ty.Field(0)
		if f.Name != c.field || f.Offset != 0 || f.Type.Kind() != reflect.Pointer || (c.only && ty.NumField() != 1) {
			t.Errorf("wasmtime.%s does not start with its C pointer %s (only: %v): %d fields, the first %s %v",
				ty.Name(), c.field, c.only, ty.NumField(), f.Name, f.Type)
		}
	}
}

// guestWAT imports test functions of every supported kind and re-exports calls to them; its
// memory holds "hello" at 16.
const guestWAT = `(module
  (import "t" "mix" (func $mix (param i32 i64 f32 f64) (result i64 i32 f64 f32)))
  (import "t" "fail" (func $fail (param i64)))
  (import "t" "read" (func $read (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
  (func (export "mix") (param i32 i64 f32 f64) (result i64 i32 f64 f32)
    (call $mix (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "fail") (param i64) (call $fail (local.get 0)))
  (func (export "read") (param i32 i32) (result i32) (call $read (local.get 0) (local.get 1))))`

// newGuest instantiates guestWAT with mix (which swaps its arguments around), fail (whose
// behaviour its argument picks) and read (which reads the guest's memory through the Caller, and
// keeps the Caller in *kept).
func newGuest(t *testing.T, kept **wasmtime.Caller) (*wasmtime.Store, *wasmtime.Instance) {
	t.Helper()
	engine := wasmtime.NewEngine()
	wasm, err := wasmtime.Wat2Wasm(guestWAT)
	if err != nil {
		t.Fatal(err)
	}
	module, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		t.Fatal(err)
	}
	i32, i64, f32, f64 := wasmtime.KindI32, wasmtime.KindI64, wasmtime.KindF32, wasmtime.KindF64
	linker := wasmtime.NewLinker(engine)
	defer linker.Close()
	defs := []struct {
		name            string
		params, results []wasmtime.ValKind
		fn              Func
	}{
		{"mix", []wasmtime.ValKind{i32, i64, f32, f64}, []wasmtime.ValKind{i64, i32, f64, f32},
			func(_ *wasmtime.Caller, a []wasmtime.Val) ([]wasmtime.Val, error) {
				return []wasmtime.Val{wasmtime.ValI64(a[1].I64() + 1), wasmtime.ValI32(a[0].I32() - 1),
					wasmtime.ValF64(a[3].F64() * 2), wasmtime.ValF32(a[2].F32() / 2)}, nil
			}},
		{"fail", []wasmtime.ValKind{i64}, nil, func(_ *wasmtime.Caller, a []wasmtime.Val) ([]wasmtime.Val, error) {
			switch a[0].I64() {
			case 1:
				return nil, errors.New("the guest asked for an error")
			case 2:
				panic("the guest asked for a panic")
			case 3:
				return []wasmtime.Val{wasmtime.ValI64(1)}, nil // one result too many
			}
			return nil, nil
		}},
		{"read", []wasmtime.ValKind{i32, i32}, []wasmtime.ValKind{i32}, func(c *wasmtime.Caller, a []wasmtime.Val) ([]wasmtime.Val, error) {
			*kept = c
			data := c.GetExport("memory").Memory().UnsafeData(c)
			p, n := a[0].I32(), a[1].I32()
			if string(data[p:p+n]) != "hello" {
				return nil, errors.New("read " + string(data[p:p+n]))
			}
			return []wasmtime.Val{wasmtime.ValI32(n)}, nil
		}},
	}
	for _, d := range defs {
		if err := Define(linker, "t", d.name, d.params, d.results, d.fn); err != nil {
			t.Fatal(err)
		}
	}
	store := wasmtime.NewStore(engine)
	inst, err := linker.Instantiate(store, module)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	return store, inst
}

// TestDefine calls Go functions defined with Define from a real guest: arguments and results of
// every kind, the Caller, errors and panics as readable traps, and that wasmtime frees every
// definition when the linker and the Store are gone.
func TestDefine(t *testing.T) {
	before := LiveFuncs()
	var kept *wasmtime.Caller
	store, inst := newGuest(t, &kept)
	call := func(name string, args ...any) (any, error) { return inst.GetFunc(store, name).Call(store, args...) }

	got, err := call("mix", int32(7), int64(1)<<40, float32(3), float64(1.5))
	if err != nil {
		t.Fatal(err)
	}
	want := []wasmtime.Val{wasmtime.ValI64(1<<40 + 1), wasmtime.ValI32(6), wasmtime.ValF64(3), wasmtime.ValF32(1.5)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mix = %v, want %v", got, want)
	}
	if got, err := call("read", int32(16), int32(5)); err != nil || got != int32(5) {
		t.Errorf("read = %v, %v; want 5", got, err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "after host function returns") {
				t.Errorf("a Caller used after its call: recovered %v", r)
			}
		}()
		CallerPtr(kept)
	}()

	for _, c := range []struct {
		arg  int64
		want string // in the call's error; "" for none
	}{
		{0, ""},
		{1, "fail: the guest asked for an error"},
		{2, "fail: the shim panicked: the guest asked for a panic"},
		{3, "fail: the shim returned 1 results for 0"},
		{0, ""}, // the Store is still usable after the traps
	} {
		_, err := call("fail", c.arg)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("fail(%d): %v; want %q", c.arg, err, c.want)
		}
	}

	store.Close()
	if n := LiveFuncs(); n != before {
		t.Errorf("%d functions still held after the linker and the Store closed, want %d", n, before)
	}
}

// TestDefineRejectsKinds: only number kinds can be passed raw.
func TestDefineRejectsKinds(t *testing.T) {
	linker := wasmtime.NewLinker(wasmtime.NewEngine())
	defer linker.Close()
	err := Define(linker, "t", "ref", []wasmtime.ValKind{wasmtime.KindExternref}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("Define with an externref parameter: %v", err)
	}
}

// BenchmarkHostCall is a guest's call of a Go host function of two i64 parameters, as
// astrid_ipc_publish's, with Define against wasmtime-go's FuncNew in the same run.
func BenchmarkHostCall(b *testing.B) {
	const wat = `(module
  (import "t" "f" (func $f (param i64 i64)))
  (func (export "loop") (param i32)
    (loop $l (call $f (i64.const 1) (i64.const 2))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))))`
	engine := wasmtime.NewEngine()
	wasm, err := wasmtime.Wat2Wasm(wat)
	if err != nil {
		b.Fatal(err)
	}
	module, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		b.Fatal(err)
	}
	i64 := []wasmtime.ValKind{wasmtime.KindI64, wasmtime.KindI64}
	var sum int64
	fn := func(_ *wasmtime.Caller, a []wasmtime.Val) ([]wasmtime.Val, error) {
		sum += a[0].I64() + a[1].I64()
		return nil, nil
	}
	for _, c := range []struct {
		name   string
		define func(*wasmtime.Linker) error
	}{
		{"FuncNew", func(l *wasmtime.Linker) error {
			ty := wasmtime.NewFuncType(valTypes(i64), nil)
			return l.FuncNew("t", "f", ty, func(c *wasmtime.Caller, a []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
				res, _ := fn(c, a)
				return res, nil
			})
		}},
		{"Define", func(l *wasmtime.Linker) error { return Define(l, "t", "f", i64, nil, fn) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			linker := wasmtime.NewLinker(engine)
			defer linker.Close()
			if err := c.define(linker); err != nil {
				b.Fatal(err)
			}
			store := wasmtime.NewStore(engine)
			defer store.Close()
			inst, err := linker.Instantiate(store, module)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			if _, err := inst.GetFunc(store, "loop").Call(store, int32(b.N)); err != nil {
				b.Fatal(err)
			}
		})
	}
	if sum != 0 && sum%3 != 0 {
		b.Fatal("wrong arguments")
	}
}
