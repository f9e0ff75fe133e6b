// Command libcni_client drives a CNI conflist the way a runtime does, with Debian's libcni
// (golang-github-appc-cni-dev 1.1.2), for hybridlay's real-caller tests.
//
//	libcni_client -path BINDIR -cache DIR add|check|del CONFLIST CONTAINERID NETNS IFNAME [CNI_ARGS]
//	libcni_client -path BINDIR version|validate CONFLIST
//	libcni_client -path BINDIR status CONFLIST
//	libcni_client -path BINDIR gc CONFLIST [CONTAINERID:IFNAME ...]
//
// libcni 1.1.2 predates STATUS and GC (added in libcni 1.2.0 with spec 1.1.0): those two are
// sent with the library's own plugin executor (pkg/invoke) and a cniVersion 1.1.0 config to
// each plugin that supports spec 1.1.0, as libcni 1.2 does. Errors are printed as the plugin's CNI error JSON
// (code, msg, details) on stdout, and the exit status is 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
)

func main() {
	path := flag.String("path", "/usr/lib/cni", "CNI plugin directories, colon-separated")
	cache := flag.String("cache", "", "libcni result cache directory")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 {
		fail(fmt.Errorf("usage: libcni_client [flags] COMMAND CONFLIST ..."))
	}
	list, err := libcni.ConfListFromFile(args[1])
	if err != nil {
		fail(err)
	}
	paths := strings.Split(*path, ":")
	cni := libcni.NewCNIConfigWithCacheDir(paths, *cache, nil)
	ctx := context.Background()

	switch args[0] {
	case "add", "check", "del":
		if len(args) < 5 {
			fail(fmt.Errorf("%s needs CONFLIST CONTAINERID NETNS IFNAME", args[0]))
		}
		rt := &libcni.RuntimeConf{ContainerID: args[2], NetNS: args[3], IfName: args[4]}
		if len(args) > 5 {
			for _, pair := range strings.Split(args[5], ";") {
				if kv := strings.SplitN(pair, "=", 2); len(kv) == 2 {
					rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
				}
			}
		}
		switch args[0] {
		case "add":
			result, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				fail(err)
			}
			if err := result.Print(); err != nil {
				fail(err)
			}
		case "check":
			if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
				fail(err)
			}
		case "del":
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				fail(err)
			}
		}
	case "version":
		info, err := cni.GetVersionInfo(ctx, list.Plugins[0].Network.Type)
		if err != nil {
			fail(err)
		}
		printJSON(map[string]interface{}{"supportedVersions": info.SupportedVersions()})
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail(err)
		}
		printJSON(map[string]interface{}{"capabilities": caps})
	case "status", "gc":
		extra := map[string]interface{}{}
		if args[0] == "gc" {
			valid := []map[string]string{}
			for _, attachment := range args[2:] {
				parts := strings.SplitN(attachment, ":", 2)
				valid = append(valid, map[string]string{"containerID": parts[0], "ifname": parts[len(parts)-1]})
			}
			extra["cni.dev/valid-attachments"] = valid
		}
		command := strings.ToUpper(args[0])
		for _, plugin := range list.Plugins {
			// As libcni 1.2: a plugin that does not speak spec 1.1.0 is not sent STATUS or GC.
			info, err := cni.GetVersionInfo(ctx, plugin.Network.Type)
			if err != nil {
				fail(err)
			}
			if !supports(info.SupportedVersions(), "1.1.0") {
				continue
			}
			if err := execWithoutResult(ctx, command, list.Name, plugin, paths, extra); err != nil {
				fail(err)
			}
		}
	default:
		fail(fmt.Errorf("unknown command %q", args[0]))
	}
}

// execWithoutResult sends a spec 1.1.0 command to one plugin with libcni's own executor.
func execWithoutResult(ctx context.Context, command, name string, plugin *libcni.NetworkConfig, paths []string,
	extra map[string]interface{}) error {
	conf := map[string]interface{}{}
	if err := json.Unmarshal(plugin.Bytes, &conf); err != nil {
		return err
	}
	conf["name"] = name
	conf["cniVersion"] = "1.1.0"
	for k, v := range extra {
		conf[k] = v
	}
	bytes, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	pluginPath, err := invoke.FindInPath(plugin.Network.Type, paths)
	if err != nil {
		return err
	}
	args := &invoke.Args{Command: command, Path: strings.Join(paths, ":")}
	return invoke.ExecPluginWithoutResult(ctx, pluginPath, bytes, args, nil)
}

func supports(versions []string, wanted string) bool {
	for _, v := range versions {
		if v == wanted {
			return true
		}
	}
	return false
}

func printJSON(v interface{}) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

func fail(err error) {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		printJSON(cniErr)
	} else {
		printJSON(map[string]interface{}{"code": 999, "msg": err.Error()})
	}
	os.Exit(1)
}
