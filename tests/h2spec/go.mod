// Wrapper module that pins h2spec, the HTTP/2 conformance tester Tollgate's
// TLS listener is checked with (tests/tests/h2spec.rs). h2spec's tags past
// v2.2.1 are not on the module proxy (its go.mod has no /v2 suffix), so
// it is pinned by commit (pseudo-version of 70ac22940108, 2020-08-04, the
// v2.6.0 release line); go.sum pins every module's hash. Regenerate with
// (GOTOOLCHAIN=local): go get -tool github.com/summerwind/h2spec/cmd/h2spec@<commit>
// && go mod tidy.
module tollgate.dev/tests/h2spec

go 1.24

tool github.com/summerwind/h2spec/cmd/h2spec

require (
	github.com/fatih/color v0.0.0-20161025120501-bf82308e8c85 // indirect
	github.com/inconshreveable/mousetrap v1.0.0 // indirect
	github.com/mattn/go-colorable v0.1.0 // indirect
	github.com/mattn/go-isatty v0.0.4 // indirect
	github.com/spf13/cobra v0.0.0-20170118185516-dc208f4211e7 // indirect
	github.com/spf13/pflag v1.0.3 // indirect
	github.com/summerwind/h2spec v0.0.0-20200804131034-70ac22940108 // indirect
	golang.org/x/net v0.0.0-20161104230106-55a3084c9119 // indirect
	golang.org/x/sys v0.0.0-20190209173611-3b5209105503 // indirect
)
