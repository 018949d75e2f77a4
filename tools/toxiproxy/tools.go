//go:build tools

// Package tools pins the toxiproxy server built by build.sh; it is never compiled.
package tools

import _ "github.com/Shopify/toxiproxy/v2/cmd/server"
