package verify

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"io"
)

// Want is what a binary must be.
type Want struct {
	GOOS, GOARCH, GOARM string
	CGO                 bool
}

var elfMachine = map[string]struct {
	m     elf.Machine
	class elf.Class
	order binary.ByteOrder
}{
	"amd64":    {elf.EM_X86_64, elf.ELFCLASS64, binary.LittleEndian},
	"arm64":    {elf.EM_AARCH64, elf.ELFCLASS64, binary.LittleEndian},
	"arm":      {elf.EM_ARM, elf.ELFCLASS32, binary.LittleEndian},
	"386":      {elf.EM_386, elf.ELFCLASS32, binary.LittleEndian},
	"ppc64le":  {elf.EM_PPC64, elf.ELFCLASS64, binary.LittleEndian},
	"s390x":    {elf.EM_S390, elf.ELFCLASS64, binary.BigEndian},
	"riscv64":  {elf.EM_RISCV, elf.ELFCLASS64, binary.LittleEndian},
	"mips":     {elf.EM_MIPS, elf.ELFCLASS32, binary.BigEndian},
	"mipsle":   {elf.EM_MIPS, elf.ELFCLASS32, binary.LittleEndian},
	"mips64":   {elf.EM_MIPS, elf.ELFCLASS64, binary.BigEndian},
	"mips64le": {elf.EM_MIPS, elf.ELFCLASS64, binary.LittleEndian},
	"loong64":  {elf.EM_LOONGARCH, elf.ELFCLASS64, binary.LittleEndian},
}

var peMachine = map[string]uint16{
	"amd64": pe.IMAGE_FILE_MACHINE_AMD64,
	"arm64": pe.IMAGE_FILE_MACHINE_ARM64,
	"386":   pe.IMAGE_FILE_MACHINE_I386,
}

var machoCPU = map[string]macho.Cpu{
	"amd64": macho.CpuAmd64,
	"arm64": macho.CpuArm64,
}

// Binary checks a binary's bytes against w. The error says what differs.
func Binary(b []byte, w Want) error {
	r := bytes.NewReader(b)
	switch w.GOOS {
	case "windows":
		if err := checkPE(r, w); err != nil {
			return err
		}
	case "darwin":
		if err := checkMachO(r, w); err != nil {
			return err
		}
	default:
		if err := checkELF(r, w); err != nil {
			return err
		}
	}
	return checkBuildInfo(r, w)
}

func checkELF(r io.ReaderAt, w Want) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("not an ELF executable, as %s/%s needs: %w", w.GOOS, w.GOARCH, err)
	}
	defer f.Close()
	want, ok := elfMachine[w.GOARCH]
	if !ok {
		return fmt.Errorf("no ELF machine known for GOARCH %s", w.GOARCH)
	}
	if f.Machine != want.m || f.Class != want.class || f.ByteOrder != want.order {
		return fmt.Errorf("ELF machine %v %v %v, want %v %v %v for %s", f.Machine, f.Class, f.ByteOrder, want.m, want.class, want.order, w.GOARCH)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %v is not an executable", f.Type)
	}
	if w.CGO {
		return nil
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked (has an ELF interpreter), but cgo is off: it must be static")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return fmt.Errorf("links shared libraries %v, but cgo is off: it must be static", libs)
	}
	return nil
}

func checkPE(r io.ReaderAt, w Want) error {
	f, err := pe.NewFile(r)
	if err != nil {
		return fmt.Errorf("not a PE executable, as windows/%s needs: %w", w.GOARCH, err)
	}
	defer f.Close()
	if m, ok := peMachine[w.GOARCH]; !ok || f.Machine != m {
		return fmt.Errorf("PE machine %#x does not match windows/%s", f.Machine, w.GOARCH)
	}
	return nil
}

func checkMachO(r io.ReaderAt, w Want) error {
	f, err := macho.NewFile(r)
	if err != nil {
		return fmt.Errorf("not a Mach-O executable, as darwin/%s needs: %w", w.GOARCH, err)
	}
	defer f.Close()
	if c, ok := machoCPU[w.GOARCH]; !ok || f.Cpu != c {
		return fmt.Errorf("Mach-O CPU %v does not match darwin/%s", f.Cpu, w.GOARCH)
	}
	return nil
}

func checkBuildInfo(r io.ReaderAt, w Want) error {
	bi, err := buildinfo.Read(r)
	if err != nil {
		return fmt.Errorf("no Go build info: %w", err)
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	cgo := "0"
	if w.CGO {
		cgo = "1"
	}
	want := map[string]string{"GOOS": w.GOOS, "GOARCH": w.GOARCH, "CGO_ENABLED": cgo, "-trimpath": "true"}
	if w.GOARM != "" {
		want["GOARM"] = w.GOARM
	}
	for _, k := range []string{"GOOS", "GOARCH", "GOARM", "CGO_ENABLED", "-trimpath"} {
		v, ok := want[k]
		if !ok {
			continue
		}
		if set[k] != v {
			return fmt.Errorf("build info has %s=%q, want %q", k, set[k], v)
		}
	}
	return nil
}
