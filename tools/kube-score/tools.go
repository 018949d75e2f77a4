//go:build tools

// Package tools pins the kube-score command built by build.sh; it is never compiled.
package tools

import _ "github.com/zegl/kube-score/cmd/kube-score"
