# Probe (Elixir 1.14.0 / OTP 25.2.3): messages a GenServer receives from
# Task.Supervisor.async_nolink/2 tasks, and what Task.await/2 leaves behind.
#
# Output lines:
#   case X                       - start of case X (task function described)
#   msg M                        - a message the GenServer got in handle_info/2,
#                                  <task_ref> = task.ref, <task_pid> = task.pid,
#                                  stacktraces as <stack>
#   report ...                   - logger events of the case (collected by a
#                                  logger handler, printed after the case, in
#                                  the order they were logged per process)
#   alias ...                    - sends to task.ref used as a process alias
#   result/mailbox ...           - Task.await cases
#
# Run: elixir task_replies.exs
defmodule Canon do
  def c(t, ctx \\ %{})
  def c(r, %{ref: r}) when is_reference(r), do: "<task_ref>"
  def c(r, _) when is_reference(r), do: "<ref>"
  def c(p, %{pid: p}) when is_pid(p), do: "<task_pid>"
  def c(p, %{owner: p}) when is_pid(p), do: "<owner>"
  def c(p, _) when is_pid(p), do: "<pid>"
  def c(%{__exception__: true} = e, _), do: inspect(e)
  def c(%Task{} = t, ctx) do
    "%Task{mfa: #{inspect(t.mfa)}, owner: #{c(t.owner, ctx)}, pid: #{c(t.pid, ctx)}, ref: #{c(t.ref, ctx)}}"
  end
  def c(t, ctx) when is_tuple(t), do: "{" <> Enum.map_join(Tuple.to_list(t), ",", &c(&1, ctx)) <> "}"
  def c([], _), do: "[]"
  def c(l, ctx) when is_list(l) do
    if stack?(l), do: "<stack>", else: "[" <> Enum.map_join(l, ",", &c(&1, ctx)) <> "]"
  end
  def c(t, _), do: inspect(t)

  defp stack?(l) do
    Enum.all?(l, fn
      {m, f, a, i} when is_atom(m) and is_atom(f) and (is_integer(a) or is_list(a)) and is_list(i) -> true
      _ -> false
    end)
  end
end

defmodule Probe.Handler do
  # runs in the logging process; forwards a short description to the collector
  def log(%{msg: {:report, %{label: label} = r}, meta: meta}, %{config: %{to: to}}) do
    send(to, {:logged, self(), label, describe(label, r), meta})
    :ok
  end

  def log(%{msg: {:report, rep}}, %{config: %{to: to}}) when is_list(rep) do
    send(to, {:logged, self(), :other, inspect(rep, limit: 5), %{}})
    :ok
  end

  def log(_, _), do: :ok

  defp describe({Task.Supervisor, :terminating}, %{report: rep}), do: {:reason, rep.reason}
  defp describe({:proc_lib, :crash}, %{report: [info | _]}) do
    {:error_info, Keyword.get(info, :error_info)}
  end
  defp describe({:supervisor, ctx}, %{report: rep}) do
    {:supervisor, ctx, Keyword.get(rep, :reason)}
  end
  defp describe(_, r), do: {:other, r}
end

defmodule Owner do
  use GenServer

  def init(tsup), do: {:ok, %{tsup: tsup, task: nil}}

  def handle_call({:run, fun}, _from, st) do
    task = Task.Supervisor.async_nolink(st.tsup, fun)
    {:reply, task, %{st | task: task}}
  end

  def handle_call(:task, _from, st), do: {:reply, st.task, st}

  def handle_info(msg, %{task: task} = st) do
    IO.puts("msg " <> Canon.c(msg, %{ref: task.ref, pid: task.pid, owner: self()}))
    {:noreply, st}
  end
end

defmodule Probe do
  def cases do
    [
      {"a_returns_value fn -> :result_a end", fn -> :result_a end},
      {"b_raises fn -> raise \"boom\" end", fn -> raise "boom" end},
      {"c_exit_normal fn -> exit(:normal) end", fn -> exit(:normal) end},
      {"d_exit_shutdown_tuple fn -> exit({:shutdown, :x}) end", fn -> exit({:shutdown, :x}) end},
      {"e_exit_boom fn -> exit(:boom) end", fn -> exit(:boom) end},
      {"f_throw fn -> throw(:oops) end", fn -> throw(:oops) end}
    ]
  end

  def run do
    for h <- :logger.get_handler_ids(), do: :ok = :logger.remove_handler(h)
    :ok = :logger.add_handler(:probe, Probe.Handler, %{level: :all, config: %{to: self()}})
    {:ok, tsup} = Task.Supervisor.start_link()
    {:ok, owner} = GenServer.start_link(Owner, tsup)
    names = %{tsup => "<task_sup>", owner => "<owner>"}

    for {name, fun} <- cases() do
      IO.puts("case " <> name)
      task = GenServer.call(owner, {:run, fun})
      Process.sleep(200)
      print_reports(Map.merge(names, %{task.pid => "<task_pid>"}), task)
    end

    # g: task.ref is a process alias of the owner (alias: :demonitor)
    IO.puts("case g_alias fn -> Process.sleep(100); :result_g end")
    task = GenServer.call(owner, {:run, fn -> Process.sleep(100); :result_g end})
    send(task.ref, :sent_to_alias_while_task_runs)
    Process.sleep(250)
    IO.puts("alias op send(task.ref, :sent_to_alias_after_down)")
    send(task.ref, :sent_to_alias_after_down)
    Process.sleep(100)
    print_reports(names, task)

    # h: Task.await after async_nolink in a plain process
    IO.puts("case h_await_value (plain process: async_nolink + Task.await)")
    t = Task.Supervisor.async_nolink(tsup, fn -> :result_h end)
    r = Task.await(t)
    Process.sleep(100)
    IO.puts("result await -> " <> Canon.c(r))
    {:messages, m} = Process.info(self(), :messages)
    IO.puts("mailbox -> " <> Canon.c(m, %{ref: t.ref, pid: t.pid}))
    print_reports(names, t)

    IO.puts("case h2_await_late (plain process: async_nolink, sleep 100 ms so reply and :DOWN are both queued, then Task.await)")
    t = Task.Supervisor.async_nolink(tsup, fn -> :result_h2 end)
    Process.sleep(100)
    {:messages, m} = Process.info(self(), :messages)
    IO.puts("mailbox before await -> " <> Canon.c(m, %{ref: t.ref, pid: t.pid}))
    r = Task.await(t)
    IO.puts("result await -> " <> Canon.c(r))
    {:messages, m} = Process.info(self(), :messages)
    IO.puts("mailbox after await -> " <> Canon.c(m, %{ref: t.ref, pid: t.pid}))
    print_reports(names, t)

    IO.puts("case i_await_raise (plain process: async_nolink + Task.await, task raises)")
    t = Task.Supervisor.async_nolink(tsup, fn -> raise "boom" end)
    r = try do
      Task.await(t)
    catch
      :exit, e -> {:exit, e}
    end
    Process.sleep(100)
    IO.puts("result await -> " <> Canon.c(r, %{ref: t.ref, pid: t.pid, owner: self()}))
    print_reports(names, t)
  end

  defp print_reports(names, task) do
    receive do
      {:logged, from, label, desc, _meta} ->
        IO.puts("report from=#{Map.get(names, from, if(from == task.pid, do: "<task_pid>", else: "<pid>"))} label=#{Canon.c(label)} #{Canon.c(desc, %{ref: task.ref, pid: task.pid})}")
        print_reports(names, task)
    after
      0 -> :ok
    end
  end
end

Probe.run()
