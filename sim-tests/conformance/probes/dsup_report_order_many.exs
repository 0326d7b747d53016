# Probe (Elixir 1.14 / OTP 25): order of a DynamicSupervisor's shutdown_error
# reports with N children, N = 4, 32, 33, 40.  Every child traps exits and,
# on the supervisor's shutdown signal, exits with {:oops, I} (I = start
# index, 1..N).  A logger handler (runs inside the supervisor) forwards each
# shutdown_error report to the collector.  Printed per N:
#   reports:   I of each report, in logged order
#   pid_order: I sorted by pid term order
#   map_order: I in the iteration order of a map %{pid => I} (what
#              dynamic_supervisor.ex iterates: its `children` map and `stacks`)
defmodule Probe.Child do
  def start_link(i) do
    :proc_lib.start_link(__MODULE__, :init, [self(), i])
  end

  def init(parent, i) do
    Process.flag(:trap_exit, true)
    :proc_lib.init_ack(parent, {:ok, self()})
    receive do
      {:EXIT, ^parent, _} -> exit({:oops, i})
    end
  end
end

defmodule Probe.Handler do
  def log(%{msg: {:report, %{label: {:supervisor, ctx}, report: rep}}}, %{config: %{to: to}}) do
    off = Keyword.get(rep, :offender)
    send(to, {:report, ctx, Keyword.get(off, :pid), Keyword.get(rep, :reason)})
    :ok
  end

  def log(_, _), do: :ok
end

defmodule Probe do
  def run(n) do
    Process.flag(:trap_exit, true)
    {:ok, sup} = DynamicSupervisor.start_link(strategy: :one_for_one)
    pids =
      for i <- 1..n do
        spec = %{id: i, start: {Probe.Child, :start_link, [i]}, restart: :temporary}
        {:ok, pid} = DynamicSupervisor.start_child(sup, spec)
        {pid, i}
      end
    idx = Map.new(pids)
    ref = Process.monitor(sup)
    Process.exit(sup, :shutdown)
    receive do
      {:DOWN, ^ref, :process, ^sup, reason} -> IO.puts("N=#{n} sup_exit reason=#{inspect(reason)}")
    end
    reports = collect([])
    true = Enum.all?(reports, fn {:report, :shutdown_error, pid, {:oops, i}} -> idx[pid] == i end)
    IO.puts("N=#{n} reports:   #{fmt(for {:report, _, pid, _} <- reports, do: idx[pid])}")
    IO.puts("N=#{n} pid_order: #{fmt(for {pid, _} <- Enum.sort(pids), do: idx[pid])}")
    IO.puts("N=#{n} map_order: #{fmt(for {pid, i} <- idx, do: (_ = pid; i))}")
    receive do {:EXIT, ^sup, _} -> :ok after 100 -> :ok end
  end

  defp collect(acc) do
    receive do
      {:report, _, _, _} = r -> collect([r | acc])
    after
      300 -> Enum.reverse(acc)
    end
  end

  defp fmt(l), do: Enum.join(l, ",")
end

for h <- :logger.get_handler_ids(), do: :ok = :logger.remove_handler(h)
:ok = :logger.add_handler(:probe, Probe.Handler, %{level: :all, config: %{to: self()}})
for n <- [4, 32, 33, 40], do: Probe.run(n)
