module github.com/holefs/holefs

go 1.26.8

require (
	github.com/google/btree v1.1.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
	pgregory.net/rapid v1.3.0
)
