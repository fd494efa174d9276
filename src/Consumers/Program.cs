using FreeBind.Consumers.Cli;

return await FreeBindCli.Build().Parse(args).InvokeAsync();
