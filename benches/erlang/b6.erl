%% b6 on Erlang/OTP, for the comparison in the README: two nodes on loopback over standard
%% distribution; 100,000 sequential gen_server calls across them (the reply is the server's
%% pid, as in otpsim's b6), then 1,000,000 one-way messages with a final acknowledgement.
%% `benches/run.sh b6-erlang` compiles and runs it (it needs `erl`, which CI does not have).
-module(b6).
-behaviour(gen_server).
-export([main/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

init([]) -> {ok, 0}.
handle_call(_, _, N) -> {reply, self(), N}.
handle_cast(_, N) -> {noreply, N}.
handle_info({done, From}, N) -> From ! {count, N}, {noreply, 0};
handle_info(_, N) -> {noreply, N + 1}.

main() ->
    Dir = filename:dirname(code:which(?MODULE)),
    {ok, _Peer, Node} = peer:start_link(#{name => b6peer, args => ["-pa", Dir]}),
    {ok, Pid} = rpc:call(Node, gen_server, start, [{local, b6}, b6, [], []]),
    Calls = 100000,
    Msgs = 1000000,
    T0 = erlang:monotonic_time(microsecond),
    calls(Pid, Calls),
    T1 = erlang:monotonic_time(microsecond),
    CallSecs = (T1 - T0) / 1.0e6,
    result(calls_per_s, Calls / CallSecs),
    result(rtt_us, CallSecs * 1.0e6 / Calls),
    T2 = erlang:monotonic_time(microsecond),
    sends(Pid, Msgs),
    Pid ! {done, self()},
    receive {count, Msgs} -> ok end,
    T3 = erlang:monotonic_time(microsecond),
    result(msgs_per_s, Msgs / ((T3 - T2) / 1.0e6)),
    halt().

calls(_, 0) -> ok;
calls(Pid, N) -> Pid = gen_server:call(Pid, N), calls(Pid, N - 1).

sends(_, 0) -> ok;
sends(Pid, N) -> Pid ! N, sends(Pid, N - 1).

result(Metric, Value) ->
    io:format("RESULT\terlang\tb6\t~s\t~.1f~n", [Metric, float(Value)]).
